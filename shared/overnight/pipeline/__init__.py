"""Pipelines: YAML definitions of steps, the runner, and the embedded batch run."""
