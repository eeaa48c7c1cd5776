"""Benchmarks: each prints figures; none runs in the test suite. Run as `python -m bench.<name> --help`."""
