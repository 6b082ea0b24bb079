"""Fault tests: real processes killed and restarted under load (docs/operations.md, "Guarantees")."""
