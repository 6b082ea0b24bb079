"""What every part of the pack parser shares: the pack directory, refs seen so far, warnings.

:class:`ParserBase` holds the helpers; :mod:`attune.packs.parser` parses each kind of file and
:mod:`attune.packs.st2_parse` the StackStorm-shaped ones.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from attune.domain import refs
from attune.domain.runtimes import is_runner_alias, resolve_runner
from attune.packs import st2
from attune.packs.yamlfields import Fields, type_name

__all__ = ["MAX_WORKFLOW_BYTES", "ParserBase"]

MAX_WORKFLOW_BYTES = 1024 * 1024
"""Workflow files larger than this are rejected (docs/workflows.md)."""

_R = TypeVar("_R")


class ParserBase:
    """One pack directory being parsed; holds the refs loaded so far for cross-checks."""

    def __init__(self, pack_dir: Path) -> None:
        self.dir = pack_dir.resolve()
        self.warnings: list[str] = []
        self.skipped: list[str] = []
        self.claimed: set[Path] = set()
        self.st2 = False
        self.pack_ref = ""
        self.seen: dict[str, dict[str, str]] = {}

    def files(self, subdir: str, suffixes: tuple[str, ...] = (".yaml", ".yml")) -> list[Path]:
        """Metadata files directly inside ``subdir``, sorted by file name."""
        directory = self.dir / subdir
        if not directory.is_dir():
            return []
        found = [p for p in directory.iterdir() if p.is_file() and p.name.endswith(suffixes)]
        return sorted(found, key=lambda p: p.name)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.dir).as_posix()

    def component_ref(self, f: Fields, kind: str, fallback_name: str, *, use_name: bool = True) -> str:
        """The file's ``ref``, or one derived from ``name`` / the file stem; checked and unique."""
        raw = f.doc.get("ref")
        if raw is None:
            name = f.doc.get("name") if use_name else None
            derived_from = name if isinstance(name, str) and name else fallback_name
            ref = f"{self.pack_ref}.{derived_from}"
        elif isinstance(raw, str):
            ref = raw
        else:
            f.fail(f"ref must be a string (got {type_name(raw)})")
        if not ref.startswith(f"{self.pack_ref}."):
            f.fail(f"ref '{ref}' must start with the pack ref '{self.pack_ref}.'")
        if not refs.is_component_ref(ref):
            f.fail(f"ref '{ref}' must be '<pack>.<name>': lowercase with exactly one dot")
        owners = self.seen.setdefault(kind, {})
        if ref in owners:
            f.fail(f"duplicate {kind} ref '{ref}' (also defined in {owners[ref]})")
        owners[ref] = f.rel
        return ref

    def label(self, f: Fields, ref: str) -> str:
        return f.text("label") or refs.label_from_name(refs.name_of(ref))

    def qualify(self, name: str) -> str:
        return name if "." in name else f"{self.pack_ref}.{name}"

    def entry_point(self, f: Fields, component_dir: str) -> str:
        """``entry_point`` relative to the component directory (a leading ``<dir>/`` is dropped)."""
        entry = f.text("entry_point").strip()
        prefix = f"{component_dir}/"
        if entry.startswith(prefix):
            entry = entry[len(prefix) :]
        looks_like_path = entry and not any(ch.isspace() for ch in entry)
        if looks_like_path and not (self.dir / component_dir / entry).is_file():
            self.warnings.append(f"{f.rel}: entry_point '{entry}' not found in {component_dir}/")
        return entry

    def runtime(self, f: Fields, default_runner: str) -> tuple[str, str]:
        runner = f.text("runner_type", default_runner).strip() or default_runner
        runtime_ref = resolve_runner(runner)
        if not is_runner_alias(runner) and "." not in runner:
            self.warnings.append(
                f"{f.rel}: runner_type '{runner}' is not a known alias; "
                "it must match a runtime ref or name at registration"
            )
        return runner, runtime_ref

    def skip(self, message: str) -> None:
        """A file is left out (unsupported content, unloadable workflow): warn, remember it."""
        self.warnings.append(message)
        self.skipped.append(message)

    def attempt(self, parse: Callable[[Path], _R], path: Path) -> _R | None:
        """``parse(path)``, or None when the file uses something Attune does not run."""
        try:
            return parse(path)
        except st2.Unsupported as exc:
            self.skip(f"{self.rel(path)}: {exc}")
            return None
