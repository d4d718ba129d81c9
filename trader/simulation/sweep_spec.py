"""The nightly sweep YAML: several strategies, each with its conIds or universe, date range, costs and grid.

```yaml
name: nightly                 # label of the sweep (used in the digest file name)
workers: 2                    # optional: local processes (default all cores; 1 = in-process)
cluster: tcp://10.0.0.5:8786  # optional: run on a Dask distributed scheduler instead
defaults:                     # optional: every job starts from these
  days: 3650
  bar_size: 1 day
  costs: {commission_bps: 1, slippage_bps: 2}   # also spread_bps, impact_coefficient, impact_window
jobs:
  - name: ma_crossover        # optional, default: the file's stem
    strategy: ma_crossover.py # file inside strategies_directory ("strategies/" prefix allowed)
    class: MACrossover        # optional when the file has one Strategy class
    conids: [265598, 756733]  # ... or `universe: NAME` (members' resolved conIds)
    grid: {FAST: [5, 10, 20], SLOW: [30, 50, 100]}
  - strategy: rsi_mean_reversion.py
    universe: demo
    start: 2020-01-01         # an explicit date range wins over `days`
    end: 2025-12-31
    grid: {PERIOD: [7, 14, 21]}
```

`load_spec` validates everything up front; errors are `ConfigError`s that name the file and the key
(``jobs[1].grid.FAST``), so a cron run fails at once rather than an hour in.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import yaml

from trader.config import convert_yaml
from trader.errors import ConfigError

if TYPE_CHECKING:
    from trader.simulation.sweep import SweepJob

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")

Mode = Literal["auto", "vectorized", "bar-by-bar"]


class _CostsSpec(msgspec.Struct, forbid_unknown_fields=True):
    commission_bps: float = 0.0
    commission_per_share: float = 0.0
    slippage_bps: float = 0.0
    slippage_per_share: float = 0.0
    spread_bps: float = 0.0  # the slippage models of `backtest --spread-bps/--impact-*` (Costs)
    impact_coefficient: float = 0.0
    impact_window: int = 20


class _Defaults(msgspec.Struct, forbid_unknown_fields=True):
    days: int | None = None
    start: date | None = None
    end: date | None = None
    bar_size: str | None = None
    costs: _CostsSpec | None = None
    capital: float | None = None
    quantity: float | None = None
    mode: Mode | None = None


class _JobSpec(_Defaults, forbid_unknown_fields=True, rename={"class_name": "class"}):
    strategy: str = ""
    grid: dict[str, Any] = msgspec.field(default_factory=dict)
    name: str | None = None
    class_name: str | None = None
    conids: list[int] | None = None
    universe: str | None = None


class _SweepSpec(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    jobs: list[_JobSpec]
    defaults: _Defaults = msgspec.field(default_factory=_Defaults)
    workers: int | None = None
    cluster: str | None = None


def strategy_file_name(path: str) -> str:
    """``strategies/x.py`` and ``x.py`` name the same file inside strategies_directory."""
    path = path.strip()
    return path.removeprefix("./").removeprefix("strategies/")


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the sweep file: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'name' and 'jobs', got {type(data).__name__}")
    return data


def _check_grid(grid: dict[str, Any], where: str, path: Path) -> dict[str, list[Any]]:
    if not grid:
        raise ConfigError(f"{path}: key '{where}.grid' is missing or empty: give param: [values, ...]")
    out: dict[str, list[Any]] = {}
    for param, values in grid.items():
        if not isinstance(values, list) or not values:
            got = "an empty list" if isinstance(values, list) else type(values).__name__
            raise ConfigError(f"{path}: key '{where}.grid.{param}' must be a non-empty list of values, got {got}")
        out[str(param)] = values
    return out


def _pick(job: Any, defaults: _Defaults, field: str) -> Any:
    value = getattr(job, field)
    return getattr(defaults, field) if value is None else value


def load_spec(path: str | Path, *, universe_members: Callable[[str], list[int]] | None = None,
              ) -> tuple[str, list[SweepJob], dict[str, Any]]:
    """Parse a nightly sweep YAML into ``(name, jobs, options)``.

    ``universe_members(name)`` returns the conIds of a universe (jobs with ``universe:`` need it); options are
    ``{"workers": int | None, "cluster": str | None}``. Raises ConfigError naming the file and the key.
    """
    from trader.errors import BacktestError
    from trader.simulation.backtester import Costs, check_backtest_params
    from trader.simulation.sweep import SweepJob

    path = Path(path)
    spec = convert_yaml(_read(path), _SweepSpec, path)
    if not _NAME.match(spec.name):
        raise ConfigError(f"{path}: key 'name' must be letters, digits, '_', '.', '-' (got {spec.name!r})")
    if not spec.jobs:
        raise ConfigError(f"{path}: key 'jobs' is empty: give at least one strategy")
    if spec.workers is not None and spec.workers < 1:
        raise ConfigError(f"{path}: key 'workers' must be at least 1 (got {spec.workers})")
    jobs: list[SweepJob] = []
    seen: set[str] = set()
    d = spec.defaults
    for i, job in enumerate(spec.jobs):
        where = f"jobs[{i}]"
        if not job.strategy:
            raise ConfigError(f"{path}: missing key '{where}.strategy' (a file inside strategies_directory)")
        strategy_file = strategy_file_name(job.strategy)
        name = job.name or Path(strategy_file).stem + (f".{job.class_name}" if job.class_name else "")
        if not _NAME.match(name):
            raise ConfigError(f"{path}: key '{where}.name' must be letters, digits, '_', '.', '-' (got {name!r})")
        if name in seen:
            raise ConfigError(f"{path}: key '{where}.name': job name {name!r} is used twice; name the jobs apart")
        seen.add(name)
        grid = _check_grid(job.grid, where, path)
        if (job.conids is None) == (job.universe is None):
            raise ConfigError(f"{path}: key '{where}' ({name}): give exactly one of 'conids' or 'universe'")
        if job.universe is not None:
            if universe_members is None:
                raise ConfigError(f"{path}: key '{where}.universe': universes cannot be resolved here")
            try:
                conids = [int(c) for c in universe_members(job.universe)]
            except Exception as exc:  # noqa: BLE001 - any lookup failure is reported against the key
                raise ConfigError(f"{path}: key '{where}.universe' ({job.universe!r}): {exc}") from None
        else:
            conids = list(job.conids or [])
        if not conids:
            raise ConfigError(f"{path}: key '{where}' ({name}): no conIds to test")
        start, end = _pick(job, d, "start"), _pick(job, d, "end")
        if start is not None and end is not None and start >= end:
            raise ConfigError(f"{path}: key '{where}.start' must be before 'end' ({start} >= {end})")
        days = _pick(job, d, "days")
        if days is not None and days < 1:
            raise ConfigError(f"{path}: key '{where}.days' must be at least 1 (got {days})")
        costs = _pick(job, d, "costs")
        try:  # the same rules as a single backtest, reported against the key
            costs_value = Costs(**msgspec.structs.asdict(costs)) if costs is not None else None
            capital = _pick(job, d, "capital")
            check_backtest_params(capital=100_000.0 if capital is None else capital, quantity=_pick(job, d, "quantity"))
        except BacktestError as exc:
            raise ConfigError(f"{path}: key '{where}' ({name}): {exc}") from None
        optional = {
            "days": days,
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
            "bar_size": _pick(job, d, "bar_size"),
            "costs": costs_value,
            "capital": _pick(job, d, "capital"),
            "quantity": _pick(job, d, "quantity"),
            "mode": _pick(job, d, "mode"),
        }
        # Unset fields keep SweepJob's own defaults (one source of truth for them).
        kwargs = {k: v for k, v in optional.items() if v is not None or k in ("start", "end", "quantity")}
        jobs.append(SweepJob(name=name, strategy_file=strategy_file, class_name=job.class_name,
                             conids=tuple(conids), grid=grid, **kwargs))
    return spec.name, jobs, {"workers": spec.workers, "cluster": spec.cluster}
