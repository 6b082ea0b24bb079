"""The client configuration file: profiles, tokens and output preferences (docs/cli.md).

The file holds bearer tokens in plain text, so it is always written with mode 0600 inside a 0700
directory, replaced atomically so a crash never leaves half a file behind.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from attune.cli.errors import CliError

DEFAULT_API_URL = "http://localhost:8080"
OUTPUT_FORMATS = ("table", "json", "yaml")


def config_path() -> Path:
    """``$XDG_CONFIG_HOME/attune/config.yaml``, else the platform's user configuration directory."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg:
        base = Path(xdg)
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    else:
        base = Path.home() / ".config"
    return base / "attune" / "config.yaml"


@dataclass
class Profile:
    """One named server: its URL, the tokens of the logged-in user and an output preference."""

    api_url: str
    auth_token: str | None = None
    refresh_token: str | None = None
    output_format: str | None = None
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Only the keys that are set (docs/cli.md: unset keys are left out of the file)."""
        values = {
            "api_url": self.api_url,
            "auth_token": self.auth_token,
            "refresh_token": self.refresh_token,
            "output_format": self.output_format,
            "description": self.description,
        }
        return {k: v for k, v in values.items() if v is not None}


@dataclass
class CliConfig:
    """The whole configuration file."""

    path: Path
    current_profile: str = "default"
    default_output_format: str = "table"
    profiles: dict[str, Profile] = field(default_factory=dict)

    @classmethod
    def default(cls, path: Path) -> CliConfig:
        """The file written on first use: one ``default`` profile pointing at localhost."""
        return cls(
            path=path,
            profiles={"default": Profile(api_url=DEFAULT_API_URL, description="Default local server")},
        )

    @classmethod
    def load(cls, path: Path | None = None) -> CliConfig:
        """Read the file, writing the default one first when it does not exist."""
        path = path or config_path()
        if not path.exists():
            config = cls.default(path)
            config.save()
            return config
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(raw, dict):
                raise ValueError("not a mapping")
            profiles = {
                str(name): Profile(
                    api_url=str(body["api_url"]),
                    auth_token=body.get("auth_token"),
                    refresh_token=body.get("refresh_token"),
                    output_format=body.get("output_format"),
                    description=body.get("description"),
                )
                for name, body in (raw.get("profiles") or {}).items()
            }
        except (yaml.YAMLError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CliError(f"Failed to parse config file {path}: {exc}") from exc
        return cls(
            path=path,
            current_profile=str(raw.get("current_profile") or "default"),
            default_output_format=str(raw.get("default_output_format") or "table"),
            profiles=profiles,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "current_profile": self.current_profile,
            "default_output_format": self.default_output_format,
            "profiles": {name: profile.to_dict() for name, profile in sorted(self.profiles.items())},
        }

    def save(self) -> None:
        """Write the file atomically, readable by the user only."""
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        fd, temp = tempfile.mkstemp(prefix=".config-", suffix=".yaml", dir=directory)
        try:
            # mkstemp already creates the file with 0600; chmod again in case of an odd umask policy.
            os.chmod(temp, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def profile(self, name: str) -> Profile:
        """The named profile; a missing one is an error the user can act on."""
        try:
            return self.profiles[name]
        except KeyError:
            raise CliError(f"Profile '{name}' does not exist") from None
