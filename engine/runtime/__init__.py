"""What moves the core: the scheduler, the two runtimes and what they hand work to.

    scheduler.py    the one timing wheel of every timer and world event, (time, -priority, seq)
    realtime.py     the core on the wall clock (anyio, trio first): one task, batches, group commit
    simulation.py   the core on SimPy's clock, against the synthetic world (scenarios/)
    agents.py       agent queues for escalations in simulation (SimPy Resources)
    channels.py     the adapter interface the real-time runtime hands sends to, and its mock
    effects.py      the one effect router both runtimes hand their actors' effects to
    dedupe.py       message ids applied lately, so a client's retry applies once (the runtime
                    checks them as it applies a round, and snapshots keep them)
    memory.py       process memory figures and the one place that tunes the garbage collector
"""
