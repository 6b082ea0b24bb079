"""Fixtures shared by integration test modules (the root tests/conftest.py has the platform and the
clients)."""

from tests.integration.rbac_support import clients, demo

__all__ = ["clients", "demo"]
