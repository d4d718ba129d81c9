"""Logging for MMR processes: configured from ``logging.yaml`` (dictConfig schema).

Each service gets a Rich console handler (on stderr, so stdout stays clean) and its own rotating file
``<log_dir>/<service>.log``. The CLI does not call this: it logs warnings to stderr only.
"""

from __future__ import annotations

import logging
import logging.config
from pathlib import Path
from typing import Any

import yaml

from trader.config import Paths, defaults_dir
from trader.errors import ConfigError


def _fill(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, str):
        return node.format(**values) if "{" in node else node
    if isinstance(node, dict):
        return {k: _fill(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(v, values) for v in node]
    return node


def setup_logging(service: str, paths: Paths, level: str | None = None) -> Path:
    """Configure logging for one service; return the path of its log file."""
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = paths.config_dir / "logging.yaml"
    if not cfg_path.exists():
        cfg_path = defaults_dir() / "logging.yaml"
    try:
        raw = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
        cfg = _fill(raw, {"log_dir": str(paths.log_dir), "service": service})
        logging.config.dictConfig(cfg)
    except (yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigError(f"{cfg_path}: invalid logging configuration: {exc}") from None
    from rich.console import Console
    from rich.logging import RichHandler

    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, RichHandler):
            handler.console = Console(stderr=True)
    if level:
        root.setLevel(level.upper())
    quiet_http_loggers()
    quiet_broker_state_logs()
    return paths.log_dir / f"{service}.log"


# Third-party HTTP loggers print request URLs (and may print headers at DEBUG): never below WARNING, whatever a
# user's logging.yaml (copied before this rule existed) or --log-level DEBUG says.
HTTP_LOGGERS = ("httpx", "httpcore", "urllib3", "hpack")


def quiet_http_loggers() -> None:
    """Raise the third-party HTTP loggers to WARNING (a secret in a URL or header must not reach a log)."""
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


class _DropStateUpdates(logging.Filter):
    """Drops ib_async's INFO line per portfolio/position update: a state snapshot the broker repeats for every
    position at each account refresh (the simulated gateway every 3 s), not an event. With 50 positions these
    lines cost trader_service most of a core (a Rich console render each) and delayed every batch of proposal
    checks. Orders, executions and commissions are still logged."""

    PREFIXES = ("updatePortfolio:", "position:")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.INFO and isinstance(record.msg, str)
                    and record.msg.startswith(self.PREFIXES))


def quiet_broker_state_logs() -> None:
    """Install `_DropStateUpdates` on ib_async's wrapper logger (once), whatever a user's logging.yaml says."""
    logger = logging.getLogger("ib_async.wrapper")
    if not any(isinstance(f, _DropStateUpdates) for f in logger.filters):
        logger.addFilter(_DropStateUpdates())
