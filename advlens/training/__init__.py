"""Training: the loop, objectives registry, jobs and the run store."""
