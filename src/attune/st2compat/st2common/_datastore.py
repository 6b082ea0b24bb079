"""Key access for st2 actions and sensors, through Attune's key API with the run's token.

``local=True`` (st2's default) names a key of the pack (``owner_type: pack``, ref ``<pack>.<name>``);
``local=False`` names a system key. Standard library only: this runs in the pack's virtualenv.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

SYSTEM_SCOPE = "system"
FULL_SYSTEM_SCOPE = "st2kv.system"
USER_SCOPE = "user"
FULL_USER_SCOPE = "st2kv.user"


class DatastoreClient:
    """get/set/delete/list of keys for one pack."""

    def __init__(self, pack: str) -> None:
        self.pack = pack
        self._url = os.environ.get("ATTUNE_API_URL", "http://127.0.0.1:8080").rstrip("/")
        self._token = os.environ.get("ATTUNE_API_TOKEN", "")

    def _ref(self, name: str, local: bool) -> str:
        return f"{self.pack}.{name}".lower() if local else name.lower()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self._url}/api/v1{path}", data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode() or "null"
        return json.loads(text)

    def get_value(
        self, name: str, local: bool = True, scope: str = SYSTEM_SCOPE, decrypt: bool = False
    ) -> Any:
        """The key's value, or None when it does not exist."""
        ref = urllib.parse.quote(self._ref(name, local), safe="")
        try:
            reply = self._call("GET", f"/keys/{ref}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return (reply.get("data") or {}).get("value")

    def set_value(
        self,
        name: str,
        value: Any,
        ttl: int | None = None,
        local: bool = True,
        scope: str = SYSTEM_SCOPE,
        encrypt: bool = False,
    ) -> bool:
        """Create or replace the key (``ttl`` is not supported and ignored)."""
        ref = self._ref(name, local)
        text = value if isinstance(value, str) else json.dumps(value)
        try:
            self._call(
                "PUT", f"/keys/{urllib.parse.quote(ref, safe='')}", {"value": text, "encrypted": encrypt}
            )
            return True
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
        body: dict[str, Any] = {"ref": ref, "name": ref.rsplit(".", 1)[-1] if local else ref, "value": text}
        body["encrypted"] = encrypt
        if local:
            body.update(owner_type="pack", owner_pack_ref=self.pack)
        else:
            body["owner_type"] = "system"
        self._call("POST", "/keys", body)
        return True

    def delete_value(self, name: str, local: bool = True, scope: str = SYSTEM_SCOPE) -> bool:
        """Delete the key; False when it did not exist."""
        ref = urllib.parse.quote(self._ref(name, local), safe="")
        try:
            self._call("DELETE", f"/keys/{ref}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise
        return True

    def list_values(self, local: bool = True, prefix: str | None = None) -> list[dict[str, Any]]:
        """Keys of the pack (``local``) or of the system, as ``{name, ref}`` items."""
        query = "owner_type=pack" if local else "owner_type=system"
        reply = self._call("GET", f"/keys?{query}&per_page=100")
        items = reply.get("data") or []
        wanted = f"{self.pack}.".lower() if local else ""
        found = [item for item in items if str(item.get("ref", "")).startswith(wanted)]
        if prefix:
            found = [item for item in found if str(item.get("name", "")).startswith(prefix)]
        return found
