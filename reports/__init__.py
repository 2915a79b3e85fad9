"""Metrics from journey traces, incrementality statistics and the summary table."""
