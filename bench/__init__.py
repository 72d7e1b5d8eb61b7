"""Benchmarks of lib.run against bare numpy and torch loops; run with `make bench` (python -m
bench)."""
