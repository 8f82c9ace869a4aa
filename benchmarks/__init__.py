"""cronium benchmarks: cronium side by side with bare Docker, measured in the same run.

Run them all with `python -m benchmarks` (or `make bench`); see benchmarks/README.md.
Not part of the test suite.
"""
