"""HTTP API v1 (api.md)."""
