"""
Benchmarks of txexecnet against execnet, side by side, with the raw limits
of this machine (bare interpreter start, bare pipes) for context.

Run C{python -m benchmarks --help}; see docs/performance.rst.  Not part of
the test suite: nothing here asserts a timing.
"""
