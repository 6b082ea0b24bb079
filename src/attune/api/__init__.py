"""HTTP API v1 (docs/api.md)."""
