"""The restore test: a backup restored into a throwaway Redis and checked against its manifest."""
