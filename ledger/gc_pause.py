"""Python's cyclic garbage collector paused while a large object graph is built.

Decoding a long engagement's snapshot, or a batch of events for the read models, makes
hundreds of thousands of objects, almost none of them garbage. The collector's passes in the
middle of that find nothing, yet each full pass walks every live object: they made loads of a
10,000-event engagement vary by a third from one run to the next. Reference counting still
frees everything as usual; the collector resumes afterwards (whatever happens) and its next
pass collects any cycle the work left.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    # Process-wide: when two threads overlap, the one that found the collector running turns
    # it back on, so it always ends enabled.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
