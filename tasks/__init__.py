"""Prefect tasks: one side effect each, retried only on transient errors."""
