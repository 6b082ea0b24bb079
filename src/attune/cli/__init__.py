"""The ``attune`` command: server processes and (later) the API client commands."""
