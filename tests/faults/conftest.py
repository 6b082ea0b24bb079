"""Fault tests (docs/operations.md "Guarantees"): real processes, ``kill -9`` and restarts.

Every test here is ``slow``; the scaled ones run in the PostgreSQL + RabbitMQ pass.
"""
