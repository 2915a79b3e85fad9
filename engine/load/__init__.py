"""``touchpoint load``: the synthetic world as an open-loop load generator for any Segment endpoint.

``traffic.py`` turns a scenario's world into Segment calls and batches; ``generator.py`` sends
them at a constant or staged arrival rate, whatever the server answers, and measures each
request's latency from its intended time; ``results.py`` keeps the figures (HDR histograms),
judges k6-style thresholds and writes the per-second lines, the summary and the figure.
"""
