"""Durable jobs: the queue, the executor that runs them, and the stages of one job
(infer, write, deliver) ordered by the pipeline."""
