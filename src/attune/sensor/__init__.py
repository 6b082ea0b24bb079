"""The sensor service: built-in core timers and pack sensors (services.md §4)."""

from attune.sensor.service import SensorService

__all__ = ["SensorService"]
