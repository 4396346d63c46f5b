"""Restoring backups: choosing one, preflight, placing files or replaying keys, verifying."""
