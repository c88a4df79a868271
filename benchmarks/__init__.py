"""Timed comparisons of the course against bare loops, peers and the machine's limit.

`make bench` (python -m benchmarks.run_all) runs them all and writes BENCHMARKS.md.
"""
