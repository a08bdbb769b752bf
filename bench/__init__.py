"""Benchmarks: figures measured beside the raw `eventsourcing` library (see bench/README.md)."""
