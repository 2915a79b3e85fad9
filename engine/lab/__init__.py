"""The laboratory: journey designs run on the same simulated customers, side by side.

``runs`` turns a design (a scenario, one of its variants, or values set by path) into a
simulated run in a worker process, many at once across the machine's cores or on a Dask
cluster; ``compare`` and ``sweep`` are the two questions asked of such runs. The statistics are
in ``reports.paired`` and ``reports.comparison``, the figures and the HTML in ``reports``.
"""
