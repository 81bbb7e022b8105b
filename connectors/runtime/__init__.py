"""The sidecar runtime: run loops, checkpoints, retries, health and metrics."""
