"""Typed configuration and the places MMR keeps its files.

Where things live
-----------------
- ``MMR_HOME`` set: everything under it — ``config/``, ``data/``, ``logs/``, ``reports/``, ``run/`` — so several
  isolated installs (and test runs) coexist on one machine.
- otherwise: config in ``$XDG_CONFIG_HOME/mmr`` (``~/.config/mmr``); data, logs, reports and pid/socket files in
  ``$XDG_DATA_HOME/mmr`` (``~/.local/share/mmr``).

On first use the files in ``config_defaults/`` are copied into the config dir (existing files are never
overwritten). ``TRADER_CONFIG`` points at another ``trader.yaml``. Every top-level key of ``trader.yaml`` can be
overridden by an environment variable with the upper-cased key name (``IB_SERVER_PORT=4002``); numbers
and booleans are parsed from the string.

Config objects are ``msgspec.Struct`` types: validation is typed, unknown keys are refused, and an invalid value
becomes a ``ConfigError`` naming the key and the file — never a traceback. msgspec is used (not pydantic) because
the CLI loads this on every call and msgspec validates in microseconds with a ~5 ms import.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import yaml

from trader.errors import ConfigError

# Every number in the config has both bounds (NaN and inf are refused too): a typo like 1e308 must fail at load,
# naming the key, not surface later as a timeout that never fires or a limit that never binds.
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Money = Annotated[float, msgspec.Meta(ge=0, le=1e12)]  # USD amounts
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
ClientId = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]  # IB client ids are int32
Count = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
Days = Annotated[int, msgspec.Meta(ge=1, le=36_500)]

CONFIG_FILES = (
    "trader.yaml",
    "position_sizing.yaml",
    "trading_filters.yaml",
    "strategy_runtime.yaml",
    "logging.yaml",
    "promotion.yaml",
)


class _Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base for config sections: immutable, typed, unknown keys refused."""


class TraderConfig(_Config):
    """``trader.yaml``: broker, service addresses, messaging limits."""

    broker: Literal["sim", "ib"] = "sim"
    ib_server_address: str = "127.0.0.1"
    ib_server_port: Port = 4012
    ib_client_id: ClientId = 1
    data_ib_client_id: ClientId = 2
    massive_api_key: str = ""
    massive_base_url: str = "https://api.massive.com"
    # `strategies generate`: the Anthropic Messages API (ANTHROPIC_API_KEY; an empty base URL is the SDK's own).
    anthropic_api_key: str = ""
    anthropic_base_url: str = ""
    anthropic_model: str = "claude-sonnet-4-5"
    # `mmr nl TEXT`: the deterministic grammar (offline), the LLM (the Anthropic settings above), or both
    # (they must agree, else the text is refused). `nl --parser` overrides it for one command.
    nl_parser: Literal["grammar", "llm", "both"] = "grammar"
    ib_account: str = ""
    # broker ib: "paper" or "live" (`mmr setup --paper/--live`; live needs the account id typed, never a DU… id).
    trading_mode: Literal["paper", "live"] = "paper"
    disconnect_alarm_seconds: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 60.0

    sim_gateway_port: Port = 4012
    sim_seed: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] = 42
    sim_calendar: Literal["24x7", "exchange"] = "24x7"
    sim_starting_cash: Money = 1_000_000.0
    # "replay": the sim gateway drives contracts with stored intraday bars (bars.duckdb) from them, starting at
    # sim_replay_start (ISO, naive = UTC; "" = the most recent stored day) at sim_replay_speed × real time.
    sim_source: Literal["model", "replay"] = "model"
    sim_replay_start: str = ""
    sim_replay_speed: Annotated[float, msgspec.Meta(gt=0, le=100_000)] = 1.0

    bind_address: str = "127.0.0.1"
    # ZeroMQ CURVE on every service socket: encrypted, and only clients holding one of the install's keys
    # (config dir/keys, one per role) connect; the services enforce each role. Off only on loopback.
    curve: bool = True
    trader_rpc_port: Port = 28001
    trader_pub_port: Port = 28002
    data_rpc_port: Port = 28003
    strategy_rpc_port: Port = 28005
    strategy_bus_port: Port = 28006

    rpc_timeout: Annotated[float, msgspec.Meta(gt=0, le=600)] = 2.0
    max_message_bytes: Annotated[int, msgspec.Meta(ge=1024, le=1024**3)] = 64 * 1024 * 1024

    strategies_directory: str = "strategies"

    # LLM pipeline (issue 6): proposals wait this long for a decision, then expire (0 = never).
    proposal_ttl_minutes: Annotated[float, msgspec.Meta(ge=0, le=525_600)] = 60.0  # at most a year
    # A proposal that would push its position group over budget: "warn" (flag it) or "reject" (refuse it).
    group_budget_mode: Literal["warn", "reject"] = "warn"
    # Approving a proposal whose notional is above this (USD) needs --key matching MMR_APPROVER_KEY (0 = off;
    # on a live account 0 means 10,000: trader.strategy.guards.approver_key_threshold).
    approver_key_threshold_usd: Money = 0.0
    # Pricing a proposal (sizing, the risk gate's preview): a ticker trader_service already streams (live
    # strategies subscribe theirs) stands in for a snapshot request when it was updated within this many seconds
    # (0 = always request a snapshot). Approval's own checks always request one.
    proposal_quote_max_age_seconds: Annotated[float, msgspec.Meta(ge=0, le=60)] = 3.0

    # Live strategies (issue 15): the kill switch stops every auto-execution at once (STRATEGY_KILL_SWITCH=true);
    # the reconcile loop re-reads strategy_runtime.yaml and re-subscribes; bars older than stale_bars bar
    # lengths never open positions.
    strategy_kill_switch: bool = False
    strategy_reconcile_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    strategy_stale_bars: Annotated[float, msgspec.Meta(gt=0, le=1000)] = 3.0

    def endpoint(self, port: int) -> str:
        """ZeroMQ TCP endpoint for one of the service ports on the bind address."""
        return f"tcp://{self.bind_address}:{port}"

    def rpc_endpoints(self) -> dict[str, str]:
        """RPC endpoint of every service, by service name (the order services start in)."""
        return {
            "trader_service": self.endpoint(self.trader_rpc_port),
            "data_service": self.endpoint(self.data_rpc_port),
            "strategy_service": self.endpoint(self.strategy_rpc_port),
        }


class ConfidenceConfig(_Config):
    floor: Fraction = 0.3


class AtrConfig(_Config):
    period: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 14
    target_atr_pct: Annotated[float, msgspec.Meta(gt=0, le=100)] = 2.0
    min_adjustment: Annotated[float, msgspec.Meta(ge=0, le=100)] = 0.25
    max_adjustment: Annotated[float, msgspec.Meta(ge=0, le=100)] = 1.5


class LiquidityConfig(_Config):
    max_pct_adv: Percent = 2.0
    wide_spread_bps: Annotated[float, msgspec.Meta(ge=0, le=10_000)] = 50.0
    wide_spread_penalty: Fraction = 0.5


class KellyConfig(_Config):
    fraction: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.25


class PositionSizingConfig(_Config):
    """``position_sizing.yaml``: how proposals without a quantity are sized."""

    method: Literal["atr", "kelly"] = "atr"
    base_position_usd: Money = 5000.0
    risk_multiplier: Annotated[float, msgspec.Meta(ge=0, le=100)] = 1.0
    min_position_usd: Money = 500.0
    max_position_usd: Money = 25000.0
    max_position_pct_nlv: Percent = 10.0
    confidence: ConfidenceConfig = ConfidenceConfig()
    atr: AtrConfig = AtrConfig()
    liquidity: LiquidityConfig = LiquidityConfig()
    kelly: KellyConfig = KellyConfig()


class TradingFiltersConfig(_Config):
    """``trading_filters.yaml``: the pre-trade risk gate's limits and lists."""

    max_position_value_usd: Money = 50000.0
    max_position_pct_nlv: Percent = 10.0
    max_daily_loss_usd: Money = 5000.0
    # Largest quantity one order may ask for (shares/contracts); 1e9 is the absolute ceiling (orders.py).
    max_order_quantity: Annotated[float, msgspec.Meta(gt=0, le=1e9)] = 100_000.0
    max_open_orders: Count = 20
    max_orders_per_window: Count = 30
    order_window_seconds: Annotated[float, msgspec.Meta(gt=0, le=7 * 86_400)] = 300.0
    allow_extended_hours: bool = False
    symbol_allowlist: list[str] = []
    symbol_denylist: list[str] = []
    exchange_allowlist: list[str] = []
    exchange_denylist: list[str] = []
    # Security types (STK, OPT, FUT, CASH …): with an allowlist only those open positions; denied ones never.
    sec_type_allowlist: list[str] = []
    sec_type_denylist: list[str] = []
    # Opening orders below this price are refused (penny stocks); 0 turns the rule off.
    min_price: Annotated[float, msgspec.Meta(ge=0, le=1e6)] = 0.0
    # Writing options (a SELL that opens a short OPT/FOP) beyond covered calls: refused unless true.
    allow_uncovered_short_options: bool = False


class StrategyEntry(_Config):
    name: str
    module: str
    class_: str = msgspec.field(name="class")
    conids: list[ClientId] = []  # IB conIds are int32 too
    bar_size: str = "1 min"
    params: dict[str, Any] = {}
    paper: bool = True
    mode: Literal["auto", "vectorized", "bar-by-bar"] = "auto"  # as `backtest --mode`: how live calls the strategy
    # Set by `strategies deploy`: the backtest run it came from and whether that run passed `backtests validate`.
    run_id: str | None = None
    validated: bool = False
    # Live runtime (issue 15). A universe adds its members' conIds to `conids`.
    universe: str | None = None
    enabled: bool = True  # `strategies disable NAME` persists false here
    historical_days_prior: Annotated[int, msgspec.Meta(ge=0, le=3650)] = 0
    # paper_only: never trade a live account (broker ib outside paper ports); auto_execute: approve its proposals.
    paper_only: bool = True
    auto_execute: bool = False
    max_position: Annotated[float, msgspec.Meta(ge=0, le=1e9)] = 0.0  # shares per conId (0 = no cap)
    max_orders_per_day: Count = 10
    cooldown_seconds: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 0.0
    # Auto-execution on a live account needs live_trading (the second opt-in) and either validated_hash equal to
    # the running file's source hash (a passing `backtests validate` of that exact code) or forced (--force).
    live_trading: bool = False
    validated_hash: str | None = None
    forced: bool = False


class StrategyRuntimeConfig(_Config):
    """``strategy_runtime.yaml``: strategies the live runtime loads."""

    strategies: list[StrategyEntry] = []


class PromotionConfig(_Config):
    """``promotion.yaml``: the checklist `backtests validate` applies before a run may be deployed."""

    min_trades: Count = 30
    min_profit_factor: Annotated[float, msgspec.Meta(ge=0, le=1000)] = 1.5
    min_sharpe: Annotated[float, msgspec.Meta(ge=-100, le=100)] = 1.0
    max_drawdown: Fraction = 0.15
    max_t_test_p: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.05
    require_positive_oos: bool = True
    # The run's bars must be stored market data for every conId, not the simulated market's made-up prices.
    require_stored_bars: bool = True
    # The walk-forward run when no --walk-forward-id is given: the run's own params on rolling test windows.
    walk_forward_train_days: Days = 120
    walk_forward_test_days: Days = 60


@dataclass(frozen=True, slots=True)
class Paths:
    """Directories MMR reads and writes."""

    config_dir: Path
    data_dir: Path
    log_dir: Path
    report_dir: Path
    run_dir: Path

    def ensure(self) -> Paths:
        """Create every directory (idempotent)."""
        for p in (self.config_dir, self.data_dir, self.log_dir, self.report_dir, self.run_dir):
            p.mkdir(parents=True, exist_ok=True)
        return self


def mmr_paths(env: Mapping[str, str] | None = None) -> Paths:
    """Resolve MMR's directories from ``MMR_HOME`` or the XDG defaults."""
    env = os.environ if env is None else env
    home = env.get("MMR_HOME")
    if home:
        root = Path(home).expanduser().resolve()
        return Paths(root / "config", root / "data", root / "logs", root / "reports", root / "run")
    user_home = Path(env.get("HOME") or Path.home())
    config = Path(env.get("XDG_CONFIG_HOME") or user_home / ".config") / "mmr"
    share = Path(env.get("XDG_DATA_HOME") or user_home / ".local" / "share") / "mmr"
    return Paths(config, share / "data", share / "logs", share / "reports", share / "run")


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where MMR keeps derived files it can rebuild (e.g. exchange sessions): ``MMR_CACHE_DIR``, else
    ``MMR_HOME/cache``, else the XDG cache directory's ``mmr``."""
    env = os.environ if env is None else env
    if env.get("MMR_CACHE_DIR"):
        return Path(env["MMR_CACHE_DIR"]).expanduser()
    if env.get("MMR_HOME"):
        return Path(env["MMR_HOME"]).expanduser().resolve() / "cache"
    return Path(env.get("XDG_CACHE_HOME") or Path(env.get("HOME") or Path.home()) / ".cache") / "mmr"


def defaults_dir() -> Path:
    """The shipped ``config_defaults/`` folder (the checkout's, or ``MMR_CONFIG_DEFAULTS``)."""
    override = os.environ.get("MMR_CONFIG_DEFAULTS")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "config_defaults"


def ensure_user_config(paths: Paths) -> list[Path]:
    """Copy missing default config files into the config dir; return the files copied."""
    paths.ensure()
    copied = []
    src_dir = defaults_dir()
    for name in CONFIG_FILES:
        dst = paths.config_dir / name
        src = src_dir / name
        if not dst.exists() and src.exists():
            shutil.copyfile(src, dst)
            copied.append(dst)
    return copied


T = TypeVar("T", bound=_Config)
S = TypeVar("S", bound=msgspec.Struct)

_PATH_RE = re.compile(r" - at `\$\.?([^`]*)`")


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        with path.open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
    return data


def convert_yaml(data: dict[str, Any], cls: type[S], path: Path, env_keys: Mapping[str, str] | None = None) -> S:
    """Validate a YAML mapping into the msgspec Struct `cls`; a ConfigError names the file and the key
    (``jobs[0].grid``) and, for keys set from the environment (`env_keys`: key → variable), the variable."""
    try:
        return msgspec.convert(data, cls, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        m = _PATH_RE.search(text)
        key = m.group(1) if m else ""
        reason = _PATH_RE.sub("", text)
        for kind, label in (("unknown field", "unknown key"), ("missing required field", "missing key")):
            found = re.search(kind + r" `([^`]+)`", reason)
            if found:
                full = f"{key}.{found.group(1)}" if key else found.group(1)
                raise ConfigError(f"{path}: {label} '{full}'") from None
        top = key.split(".", 1)[0].split("[", 1)[0]
        origin = f" (set by environment variable {env_keys[top]})" if env_keys and top in env_keys else ""
        raise ConfigError(f"{path}: invalid value for key '{key}'{origin}: {reason}") from None


def load_section(name: str, cls: type[T], paths: Paths | None = None, *, path: Path | None = None) -> T:
    """Load one YAML config file into its typed section (defaults for missing keys)."""
    paths = paths or mmr_paths()
    path = path or paths.config_dir / name
    if not path.exists():
        path = defaults_dir() / name
    return convert_yaml(_read_yaml(path), cls, path)


def trader_config_path(paths: Paths | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The ``trader.yaml`` in use: ``TRADER_CONFIG`` or the user config dir (falling back to the default)."""
    env = os.environ if env is None else env
    if env.get("TRADER_CONFIG"):
        return Path(env["TRADER_CONFIG"]).expanduser()
    paths = paths or mmr_paths(env)
    user = paths.config_dir / "trader.yaml"
    return user if user.exists() else defaults_dir() / "trader.yaml"


# Variables MMR reads besides the trader.yaml overrides (roles, keys, where files live).
OTHER_ENV_VARS = (
    "MMR_HOME", "TRADER_CONFIG", "MMR_CONFIG_DEFAULTS", "MMR_ROLE", "MMR_APPROVER_KEY", "MMR_CLIENT_KEY",
    "MASSIVE_API_KEY", "SIM_ADMIN_PORT", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
)


def mmr_env_vars(env: Mapping[str, str] | None = None) -> list[str]:
    """Every variable in ``env`` that changes how MMR behaves: the override of each ``trader.yaml`` key (its
    upper-cased name), :data:`OTHER_ENV_VARS` and anything starting with ``MMR_`` (tests clear these)."""
    env = os.environ if env is None else env
    known = {key.upper() for key in TraderConfig.__struct_fields__} | set(OTHER_ENV_VARS)
    return sorted(name for name in env if name in known or name.startswith("MMR_"))


def load_trader_config(paths: Paths | None = None, env: Mapping[str, str] | None = None) -> TraderConfig:
    """Load ``trader.yaml`` and apply environment overrides (upper-cased key names)."""
    env = os.environ if env is None else env
    path = trader_config_path(paths, env)
    if env.get("TRADER_CONFIG") and not path.exists():
        raise ConfigError(f"TRADER_CONFIG points at {path}, which does not exist")
    data = _read_yaml(path)
    env_keys: dict[str, str] = {}
    for key in TraderConfig.__struct_fields__:
        var = key.upper()
        if var in env:
            # The raw string is given to msgspec's lax mode, which parses "4002", "2.5", "true" for typed fields.
            data[key] = env[var]
            env_keys[key] = f"{var}={env[var]!r}"
    config = convert_yaml(data, TraderConfig, path, env_keys)
    if not config.curve and not is_loopback(config.bind_address):
        origin = "".join(f" ({env_keys[k]})" for k in ("curve", "bind_address") if k in env_keys)
        raise ConfigError(
            f"{path}: 'bind_address' {config.bind_address!r} is not a loopback address and 'curve' is false{origin}: "
            f"anyone on the network could trade. Set 'curve: true' (the default) or bind to 127.0.0.1"
        )
    return config


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # a host name or "*": reachable from elsewhere
        return False
