"""Public helpers for tests and benchmarks (never imported by the services themselves)."""
