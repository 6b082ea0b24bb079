"""Real-time change notifications: the per-process hub, the WebSocket protocol and the service.

``attune notifier`` serves the feed alone on ``notifier.host:notifier.port`` (path ``/ws``); the API
serves the same protocol at ``/api/v1/notifications/ws`` and the execution event stream.
"""
