"""Read models built from the event stream (issue 4)."""
