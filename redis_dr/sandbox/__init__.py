"""Throwaway servers on loopback: for the demo, tests, benchmarks and restore tests."""
