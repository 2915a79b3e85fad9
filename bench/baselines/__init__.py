"""The designs users would build instead, each a small program run on the same work as the engine's
benchmarks, so every figure can be read as a ratio to them (``touchpoint bench baselines``):

- ``trio_tasks``: one trio task per customer, sleeping through its wait (timers, memory);
- ``apscheduler_jobs``: APScheduler 3 with one date job per wait (timers);
- ``simpy_processes``: one SimPy process per customer living the cart journey (the simulation);
- the bare-loop ceiling is ``bench.ceiling``.

The timer work of each: N customers, each with one wait that comes due at the same moment; when
it fires, a quiet-hours check in the customer's time zone and a cap of two sends in 24 hours over
the customer's own send times, then the send recorded. That is less than the engine does per
fire (every policy, the journey's walk, the timeline), so a ratio in the engine's favour is not
flattered by the baseline's work.
"""
