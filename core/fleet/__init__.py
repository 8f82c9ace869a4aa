"""The fleet: the queue, workers, the scheduler, cancel requests and metrics."""
