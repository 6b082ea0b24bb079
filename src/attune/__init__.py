"""Attune: event-driven automation and orchestration."""

__version__ = "0.1.0"
