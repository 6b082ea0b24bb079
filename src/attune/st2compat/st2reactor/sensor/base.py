"""``st2reactor.sensor.base``: ``Sensor`` (runs its own loop) and ``PollingSensor`` (``poll()`` on a timer).

As in StackStorm: ``self.sensor_service`` dispatches triggers (``dispatch(trigger, payload)``), reads
and writes keys (``get_value``/``set_value``/…) and gives loggers (``get_logger``); ``self.config``
is the pack configuration. Attune's sensor wrapper calls ``setup()``, then ``run()`` (or ``poll()``
every ``poll_interval`` seconds), and ``cleanup()`` on stop.
"""

from __future__ import annotations

import abc
from typing import Any

__all__ = ["PollingSensor", "Sensor"]


class Sensor(abc.ABC):
    """A sensor that runs its own loop in ``run()``."""

    def __init__(self, sensor_service: Any, config: dict[str, Any] | None = None) -> None:
        self._sensor_service = sensor_service
        self.sensor_service = sensor_service
        self._config = config or {}
        self.config = self._config

    @abc.abstractmethod
    def setup(self) -> None:
        """Prepare (connections, state) before ``run``."""

    @abc.abstractmethod
    def run(self) -> None:
        """The sensor's main loop."""

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Release what ``setup`` acquired."""

    @abc.abstractmethod
    def add_trigger(self, trigger: dict[str, Any]) -> None:
        """A rule started using one of this sensor's triggers."""

    @abc.abstractmethod
    def update_trigger(self, trigger: dict[str, Any]) -> None:
        """A trigger's parameters changed."""

    @abc.abstractmethod
    def remove_trigger(self, trigger: dict[str, Any]) -> None:
        """No rule uses the trigger any more."""


class PollingSensor(Sensor):
    """A sensor whose ``poll()`` is called every ``poll_interval`` seconds."""

    def __init__(
        self, sensor_service: Any, config: dict[str, Any] | None = None, poll_interval: float = 5
    ) -> None:
        super().__init__(sensor_service=sensor_service, config=config)
        self._poll_interval = poll_interval

    @abc.abstractmethod
    def poll(self) -> None:
        """Look once and dispatch what was found."""

    def run(self) -> None:
        """Polling sensors are driven by the wrapper; ``run`` is not used."""

    def get_poll_interval(self) -> float:
        """Seconds between two ``poll()`` calls."""
        return self._poll_interval

    def set_poll_interval(self, poll_interval: float) -> None:
        """Change the polling interval."""
        self._poll_interval = poll_interval
