"""Evaluation: metrics (pass@k, maj@k, confidence intervals) and running a model over a task."""
