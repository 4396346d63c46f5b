"""Prometheus metrics of every flow: what they say (`model`) and where they go (`targets`)."""
