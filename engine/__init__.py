"""What moves the actor core: the scheduler, the runtimes, scenario loading and the CLI."""
