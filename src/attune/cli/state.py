"""Per-invocation state of the client commands: global options, configuration, client, printer.

One :class:`State` lives in the click context of each run (``ctx.obj``); the root callback makes
it the current one (:func:`activate`) and commands reach it with :func:`current`. Tests may
pass ``obj=State(transport=…)`` to route HTTP to an in-process app.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from attune.cli.client import ApiClient, env_token
from attune.cli.config import DEFAULT_API_URL, OUTPUT_FORMATS, CliConfig, Profile
from attune.cli.errors import CliError
from attune.cli.output import Printer


@dataclass
class State:
    """Global options of one run and the objects derived from them."""

    profile_override: str | None = None
    api_url_override: str | None = None
    output_flag: str | None = None
    verbose: bool = False
    config_file: Path | None = None
    transport: httpx.BaseTransport | None = None
    _config: CliConfig | None = field(default=None, repr=False)
    _client: ApiClient | None = field(default=None, repr=False)
    _printer: Printer | None = field(default=None, repr=False)

    # -- configuration -------------------------------------------------------------------------

    @property
    def config(self) -> CliConfig:
        if self._config is None:
            self._config = CliConfig.load(self.config_file)
        return self._config

    @property
    def profile_name(self) -> str:
        """``--profile`` / ``ATTUNE_PROFILE`` for this run, else the saved current profile."""
        return self.profile_override or self.config.current_profile

    @property
    def profile(self) -> Profile:
        return self.config.profile(self.profile_name)

    @property
    def api_url(self) -> str:
        if self.api_url_override:
            return self.api_url_override
        profile = self.config.profiles.get(self.profile_name)
        if profile is None and self.profile_override:
            raise CliError(f"Profile '{self.profile_override}' does not exist")
        return profile.api_url if profile else DEFAULT_API_URL

    @property
    def output_format(self) -> str:
        """The flag, then the profile's preference, then the global default, then table."""
        if self.output_flag:
            return self.output_flag
        profile = self.config.profiles.get(self.profile_name)
        for candidate in (profile.output_format if profile else None, self.config.default_output_format):
            if candidate in OUTPUT_FORMATS:
                return candidate
        return "table"

    def save_tokens(self, access: str | None, refresh: str | None) -> None:
        """Store a token pair on the *selected* profile (docs/cli.md gap), never switching profiles."""
        profile = self.profile
        profile.auth_token, profile.refresh_token = access, refresh
        self.config.save()

    # -- derived objects -----------------------------------------------------------------------

    @property
    def printer(self) -> Printer:
        if self._printer is None:
            self._printer = Printer(self.output_format)
        return self._printer

    @property
    def client(self) -> ApiClient:
        if self._client is None:
            override = env_token()
            profile = self.config.profiles.get(self.profile_name)
            if profile is None and self.profile_override:
                raise CliError(f"Profile '{self.profile_override}' does not exist")
            self._client = ApiClient(
                self.api_url,
                token=override or (profile.auth_token if profile else None),
                refresh_token=None if override else (profile.refresh_token if profile else None),
                save_tokens=None if override or profile is None else self.save_tokens,
                transport=self.transport,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


_CURRENT: ContextVar[State | None] = ContextVar("attune_cli_state", default=None)


def activate(state: State) -> None:
    """Make ``state`` the one :func:`current` returns for the rest of this run."""
    _CURRENT.set(state)


def current() -> State:
    """The :class:`State` of the running command."""
    state = _CURRENT.get()
    if state is None:
        state = State()
        _CURRENT.set(state)
    return state


def configure_logging(verbose: bool) -> None:
    """``-v`` turns on debug logging of the client (HTTP included) on stderr."""
    if not verbose:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in ("attune.cli", "httpx"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
