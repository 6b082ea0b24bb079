"""Runs one StackStorm Python sensor class (docs/stackstorm.md).

Usage (by the sensor service): ``python3 sensor_wrapper.py <sensor file> <class name> [poll seconds]``
with ``st2reactor`` importable. It builds the ``sensor_service`` (dispatch through Attune's events
API with the sensor token, keys through the key API), loads the pack configuration, then runs
``setup()``, ``run()`` (or ``poll()`` every interval) and ``cleanup()`` on SIGTERM. Standard library
only and no ``attune`` import: it runs with the pack's virtualenv interpreter.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class SensorService:
    """st2's ``sensor_service``: dispatch triggers, keys, loggers."""

    def __init__(self, pack: str) -> None:
        # On PYTHONPATH only in this process; imported by name.
        datastore: Any = importlib.import_module("st2common._datastore")
        self._url = os.environ.get("ATTUNE_API_URL", "http://127.0.0.1:8080").rstrip("/")
        self._token = os.environ.get("ATTUNE_API_TOKEN", "")
        self._client = datastore.DatastoreClient(pack)
        self.get_value = self._client.get_value
        self.set_value = self._client.set_value
        self.delete_value = self._client.delete_value
        self.list_values = self._client.list_values

    def get_logger(self, name: str) -> logging.Logger:
        """A logger writing to stderr (the sensor service forwards it to its log)."""
        return logging.getLogger(name)

    def dispatch(self, trigger: str, payload: Any = None, trace_tag: str | None = None) -> None:
        """Emit an event for ``trigger`` (``pack.name``) with ``payload``."""
        self.dispatch_with_context(trigger, payload)

    def dispatch_with_context(self, trigger: str, payload: Any = None, trace_context: Any = None) -> None:
        """Like ``dispatch`` (the trace context is accepted for compatibility)."""
        body = json.dumps({"trigger_ref": trigger, "payload": payload or {}}).encode()
        request = urllib.request.Request(f"{self._url}/api/v1/events", data=body, method="POST")
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
        except urllib.error.URLError as exc:
            logging.getLogger("st2.sensor").error("dispatching %s failed: %s", trigger, exc)

    def pack_config(self, pack: str) -> dict[str, Any]:
        """The pack's configuration from the API (empty when unreadable)."""
        request = urllib.request.Request(f"{self._url}/api/v1/packs/{pack}")
        request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                data = json.loads(response.read().decode() or "{}")
        except (urllib.error.URLError, ValueError):
            return {}
        config = (data.get("data") or {}).get("config")
        return config if isinstance(config, dict) else {}


def _load_class(path: Path, class_name: str) -> Any:
    for extra in (path.parent, path.parent / "lib"):
        if extra.is_dir():
            sys.path.insert(0, str(extra))
    spec = importlib.util.spec_from_file_location(f"st2_sensor_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, class_name)


def main(argv: list[str]) -> int:
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("ATTUNE_LOG_LEVEL", "INFO").upper(),
        format="%(levelname)s %(name)s: %(message)s",
    )
    path, class_name = Path(argv[1]), argv[2]
    poll = float(argv[3]) if len(argv) > 3 else 60.0
    pack = os.environ.get("ATTUNE_SENSOR_REF", "pack.sensor").split(".", 1)[0]
    service = SensorService(pack)
    cls = _load_class(path, class_name)
    base: Any = importlib.import_module("st2reactor.sensor.base")
    config = service.pack_config(pack)
    if issubclass(cls, base.PollingSensor):
        sensor = cls(sensor_service=service, config=config, poll_interval=poll)
    else:
        sensor = cls(sensor_service=service, config=config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for instance in json.loads(os.environ.get("ATTUNE_SENSOR_TRIGGERS") or "[]"):
        try:
            sensor.add_trigger(
                {"ref": instance.get("trigger_ref"), "parameters": instance.get("config") or {}}
            )
        except Exception:  # a sensor's own hook failing must not stop it
            logging.getLogger("st2.sensor").exception("add_trigger failed")
    sensor.setup()
    try:
        if isinstance(sensor, base.PollingSensor):
            while not stop.is_set():
                try:
                    sensor.poll()
                except Exception:
                    logging.getLogger("st2.sensor").exception("poll() failed")
                stop.wait(sensor.get_poll_interval())
        else:
            runner = threading.Thread(target=sensor.run, daemon=True)
            runner.start()
            while runner.is_alive() and not stop.is_set():
                stop.wait(0.5)
    finally:
        sensor.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
