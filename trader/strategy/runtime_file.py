"""Edits of strategy_runtime.yaml: atomic, and two concurrent edits both survive.

Every edit takes an exclusive lock on ``strategy_runtime.yaml.lock`` (fcntl), re-reads the file, applies its
change, checks the result still loads as `StrategyRuntimeConfig`, writes a temp file and renames it over the
original. The runtime never reads a half-written file, and a second writer waits and edits the first's result.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from trader.errors import BacktestError, StrategyLoadError

HEADER = "# Live strategy runtime (strategy_service). Strategies load from strategies_directory only.\n"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def read_entries(path: Path) -> dict[str, Any]:
    """strategy_runtime.yaml as plain data (``{"strategies": []}`` when absent or empty)."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    data = data or {}
    data["strategies"] = data.get("strategies") or []
    return data


def edit_runtime(path: Path, change: Callable[[list[dict[str, Any]]], Any]) -> Any:
    """Apply ``change`` to the list of entries under the lock and write the file atomically; returns what
    ``change`` returned. Raises BacktestError when the result would not load."""
    import msgspec
    import yaml

    from trader.config import StrategyRuntimeConfig

    with _locked(path):
        data = read_entries(path)
        result = change(data["strategies"])
        try:
            msgspec.convert(data, StrategyRuntimeConfig, strict=False)
        except msgspec.ValidationError as exc:
            raise BacktestError(f"{path} would not load after this change: {exc}") from None
        old = path.read_text(encoding="utf-8") if path.exists() else HEADER
        header = "".join(line for line in old.splitlines(keepends=True)[:1] if line.startswith("#"))
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        os.replace(tmp, path)  # atomic: readers see the old file or the new one
        return result


def add_entry(path: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Append one entry; a name already deployed raises AlreadyDeployed."""
    from trader.errors import AlreadyDeployed

    def change(entries: list[dict[str, Any]]) -> dict[str, Any]:
        if any(isinstance(s, dict) and s.get("name") == entry["name"] for s in entries):
            raise AlreadyDeployed(f"a strategy named {entry['name']!r} is already in {path}; pick another --name")
        entries.append(entry)
        return entry

    return edit_runtime(path, change)


def _find(entries: list[dict[str, Any]], name: str, path: Path) -> dict[str, Any]:
    for s in entries:
        if isinstance(s, dict) and s.get("name") == name:
            return s
    raise StrategyLoadError(f"no strategy named {name!r} in {path}; see `mmr strategies deployed`")


def set_enabled(path: Path, name: str, enabled: bool) -> dict[str, Any]:
    """Persist ``enabled`` on one entry (survives restarts)."""
    def change(entries: list[dict[str, Any]]) -> dict[str, Any]:
        s = _find(entries, name, path)
        s["enabled"] = enabled
        return dict(s)

    return edit_runtime(path, change)


def remove_entry(path: Path, name: str) -> dict[str, Any]:
    """Remove one entry; returns it."""
    def change(entries: list[dict[str, Any]]) -> dict[str, Any]:
        s = _find(entries, name, path)
        entries.remove(s)
        return dict(s)

    return edit_runtime(path, change)
