"""The sensor service: built-in core timers and pack sensors (docs/sensors.md)."""

from attune.sensor.service import SensorService

__all__ = ["SensorService"]
