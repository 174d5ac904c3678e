"""Benchmarks: bertfit against its peers, each contender in its own process, in one run."""
