"""What travels on the bus: message envelopes and payloads, exchanges and queues (docs/operations.md).

Below the database layer, which stages messages in its outbox, and below the bus, which carries
them; it imports neither.
"""
