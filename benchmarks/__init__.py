"""Benchmarks: a synthetic catalogue, the sandbox VTEX behind a latency and rate-limit
layer, and the scenarios of issue 6 (`python -m benchmarks.run --help`)."""
