"""Changing the risk gate's limits and lists (``trading_filters.yaml``) from the CLI: ``risk set KEY VALUE`` and
``filter add|remove LIST SYMBOL…``.

Pure apart from :func:`write_settings`: a change is validated with the config's own bounds (a new
``TradingFiltersConfig`` is built exactly as the loader builds one, so what ``risk set`` accepts is what a restart
would load), then written into the user's YAML file line by line, keeping its comments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from trader.config import TradingFiltersConfig
from trader.errors import ConfigError

__all__ = ["LIST_KEYS", "SCALAR_KEYS", "SIZING_KEYS", "set_limit", "set_sizing", "edit_list", "write_settings"]

LIST_KEYS = ("symbol_allowlist", "symbol_denylist", "exchange_allowlist", "exchange_denylist", "sec_type_allowlist",
             "sec_type_denylist")
SCALAR_KEYS = tuple(k for k in TradingFiltersConfig.__struct_fields__ if k not in LIST_KEYS)


# The sizing settings `session set` may change: the top-level numbers and the method (the nested ATR,
# liquidity, confidence and Kelly tables stay file edits).
SIZING_KEYS = ("method", "base_position_usd", "risk_multiplier", "min_position_usd", "max_position_usd",
               "max_position_pct_nlv")


def _rebuild(cfg: Any, key: str, value: Any) -> Any:
    data = msgspec.to_builtins(cfg)
    data[key] = value
    try:
        return msgspec.convert(data, type(cfg), strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid value {value!r} for {key}: {exc}") from None


def set_limit(cfg: TradingFiltersConfig, key: str, text: str) -> TradingFiltersConfig:
    """``cfg`` with the scalar ``key`` set from ``text`` ("25000", "true"), checked against the config's bounds.

    Raises :class:`ConfigError` for an unknown key, a list key (use :func:`edit_list`) or a value out of bounds.
    """
    if key in LIST_KEYS:
        raise ConfigError(f"{key} is a list: use `mmr filter add|remove` to change it")
    if key not in SCALAR_KEYS:
        raise ConfigError(f"unknown risk setting {key!r}; known: {', '.join(SCALAR_KEYS)}")
    raw = str(text).strip()
    value: Any = raw.lower() if raw.lower() in ("true", "false") else raw
    if value in ("true", "false"):
        value = value == "true"
    return _rebuild(cfg, key, value)


def set_sizing(cfg: Any, key: str, text: str) -> Any:
    """The ``PositionSizingConfig`` ``cfg`` with ``key`` (one of :data:`SIZING_KEYS`) set from ``text``,
    checked against the config's own bounds (and min ≤ base ≤ max position). Raises :class:`ConfigError`."""
    if key not in SIZING_KEYS:
        raise ConfigError(f"unknown sizing setting {key!r}; known: {', '.join(SIZING_KEYS)}")
    new = _rebuild(cfg, key, str(text).strip())
    if not new.min_position_usd <= new.base_position_usd <= new.max_position_usd:
        raise ConfigError(f"sizing needs min_position_usd ≤ base_position_usd ≤ max_position_usd, got "
                          f"{new.min_position_usd:g} ≤ {new.base_position_usd:g} ≤ {new.max_position_usd:g}")
    return new


def edit_list(cfg: TradingFiltersConfig, key: str, action: str, values: Iterable[str]) -> TradingFiltersConfig:
    """``cfg`` with upper-cased ``values`` added to (or removed from) the list ``key``; order kept, no duplicates."""
    if key not in LIST_KEYS:
        raise ConfigError(f"unknown filter list {key!r}; known: {', '.join(LIST_KEYS)}")
    items = [str(v).strip().upper() for v in values if str(v).strip()]
    if not items:
        raise ConfigError("give at least one symbol or exchange")
    current = list(getattr(cfg, key))
    if action == "add":
        new = current + [v for v in dict.fromkeys(items) if v not in current]
    elif action == "remove":
        new = [v for v in current if v not in items]
    else:
        raise ConfigError(f"unknown filter action {action!r} (add or remove)")
    return _rebuild(cfg, key, new)


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def write_settings(path: Path, cfg: Any, keys: Iterable[str]) -> None:
    """Write ``keys`` of ``cfg`` into the YAML file at ``path``: each ``key:`` line is replaced (its trailing
    comment kept), a missing key is appended. The file is replaced atomically."""
    text = path.read_text() if path.exists() else ""
    for key in keys:
        line = f"{key}: {_yaml_value(getattr(cfg, key))}"
        pattern = re.compile(rf"^{re.escape(key)}:[^#\n]*?(\s*#.*)?$", re.MULTILINE)
        if pattern.search(text):
            text = pattern.sub(lambda m, line=line: line + (m.group(1) or ""), text, count=1)
        else:
            text = text + ("" if not text or text.endswith("\n") else "\n") + line + "\n"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(text)
    tmp.replace(path)
