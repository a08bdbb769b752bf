"""Engagement Ledger: the domain and the application service (no projections, no UI)."""
