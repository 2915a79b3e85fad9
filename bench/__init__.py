"""Benchmarks: the load harnesses (run as modules) and pytest-benchmark micro-benchmarks.

Nothing here is a test: speed is reported as numbers, next to a ceiling measured in the same run.
"""
