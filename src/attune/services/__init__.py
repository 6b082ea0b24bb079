"""Long-running services and the supervisor that runs them."""
