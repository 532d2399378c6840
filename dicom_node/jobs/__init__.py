"""Durable jobs: the queue, the executor that runs them, and the pipeline of one job."""
