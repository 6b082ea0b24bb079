"""The executor service: rule enforcement, policies, scheduling and liveness (docs/operations.md)."""
