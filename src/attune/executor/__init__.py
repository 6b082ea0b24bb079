"""The executor service: rule enforcement, execution policies, scheduling and liveness (services.md §1)."""
