"""Throwaway redis-server processes on loopback: the restore test, replay and drills run them."""
