"""Config: defaults copied on first run, env overrides, TRADER_CONFIG, clear errors."""

from __future__ import annotations

import pytest

from trader.config import (
    CONFIG_FILES,
    PositionSizingConfig,
    TradingFiltersConfig,
    ensure_user_config,
    load_section,
    load_trader_config,
    mmr_paths,
)
from trader.errors import ConfigError


def test_mmr_home_holds_everything(mmr_home):
    paths = mmr_paths()
    for p in (paths.config_dir, paths.data_dir, paths.log_dir, paths.report_dir, paths.run_dir):
        assert mmr_home in p.parents


def test_xdg_defaults_without_mmr_home():
    paths = mmr_paths({"HOME": "/home/u"})
    assert str(paths.config_dir) == "/home/u/.config/mmr"
    assert str(paths.data_dir).startswith("/home/u/.local/share/mmr")
    assert str(paths.log_dir).startswith("/home/u/.local/share/mmr")


def test_defaults_copied_once_and_never_overwritten(mmr_home):
    paths = mmr_paths()
    copied = ensure_user_config(paths)
    assert sorted(p.name for p in copied) == sorted(CONFIG_FILES)
    (paths.config_dir / "trader.yaml").write_text("trader_rpc_port: 43210\n")
    assert ensure_user_config(paths) == []
    assert load_trader_config(paths).trader_rpc_port == 43210


def test_default_values(mmr_home):
    cfg = load_trader_config()
    assert (cfg.trader_rpc_port, cfg.trader_pub_port, cfg.data_rpc_port) == (28001, 28002, 28003)
    assert (cfg.strategy_rpc_port, cfg.strategy_bus_port) == (28005, 28006)
    assert cfg.bind_address == "127.0.0.1"
    assert cfg.broker == "sim"


def test_env_overrides_upper_cased_key(mmr_home, monkeypatch):
    monkeypatch.setenv("IB_SERVER_PORT", "4002")
    monkeypatch.setenv("BROKER", "ib")
    monkeypatch.setenv("RPC_TIMEOUT", "0.5")
    cfg = load_trader_config()
    assert (cfg.ib_server_port, cfg.broker, cfg.rpc_timeout) == (4002, "ib", 0.5)


def test_trader_config_env_picks_another_file(mmr_home, tmp_path, monkeypatch):
    alt = tmp_path / "alt.yaml"
    alt.write_text("data_rpc_port: 45003\n")
    monkeypatch.setenv("TRADER_CONFIG", str(alt))
    assert load_trader_config().data_rpc_port == 45003


def test_missing_trader_config_file_is_clear(mmr_home, tmp_path, monkeypatch):
    monkeypatch.setenv("TRADER_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_trader_config()


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("trader_rpc_port: abc\n", "trader_rpc_port"),
        ("trader_rpc_port: 70000\n", "trader_rpc_port"),
        ("broker: paper-magic\n", "broker"),
        ("trder_rpc_port: 1\n", "trder_rpc_port"),
    ],
)
def test_invalid_values_name_key_and_file(mmr_home, tmp_path, monkeypatch, yaml_text, key):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml_text)
    monkeypatch.setenv("TRADER_CONFIG", str(bad))
    with pytest.raises(ConfigError) as info:
        load_trader_config()
    assert key in str(info.value) and "bad.yaml" in str(info.value)


def test_invalid_env_value_names_the_variable(mmr_home, monkeypatch):
    monkeypatch.setenv("DATA_RPC_PORT", "lots")
    with pytest.raises(ConfigError, match="DATA_RPC_PORT"):
        load_trader_config()


def test_broken_yaml_is_a_config_error(mmr_home, tmp_path, monkeypatch):
    bad = tmp_path / "broken.yaml"
    bad.write_text("a: [1, 2\n")
    monkeypatch.setenv("TRADER_CONFIG", str(bad))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_trader_config()


def test_nested_section_error_names_nested_key(mmr_home, tmp_path):
    f = tmp_path / "position_sizing.yaml"
    f.write_text("atr:\n  period: -3\n")
    with pytest.raises(ConfigError, match=r"atr\.period"):
        load_section("position_sizing.yaml", PositionSizingConfig, path=f)


def test_other_sections_load_defaults(mmr_home):
    ensure_user_config(mmr_paths())
    assert load_section("position_sizing.yaml", PositionSizingConfig).base_position_usd == 5000.0
    assert load_section("trading_filters.yaml", TradingFiltersConfig).max_open_orders == 20


# --------------------------------------------------------------------------- numeric bounds
def _numeric_fields(cls, prefix=""):
    """(dotted key, IntType/FloatType) of every number in a config struct, nested sections included."""
    from msgspec import inspect as mi

    out = []
    for f in mi.type_info(cls).fields:
        t = f.type
        while isinstance(t, (mi.ListType, mi.DictType)):
            t = t.item_type if isinstance(t, mi.ListType) else t.value_type
        if isinstance(t, (mi.IntType, mi.FloatType)):
            out.append((prefix + f.name, t))
        elif isinstance(t, mi.StructType):
            out += _numeric_fields(t.cls, prefix + f.name + ".")
    return out


def test_every_numeric_config_key_has_both_bounds():
    from trader.config import PromotionConfig, StrategyRuntimeConfig, TraderConfig

    unbounded = []
    for cls in (TraderConfig, PositionSizingConfig, TradingFiltersConfig, StrategyRuntimeConfig, PromotionConfig):
        for key, t in _numeric_fields(cls):
            if (t.ge is None and t.gt is None) or (t.le is None and t.lt is None):
                unbounded.append(f"{cls.__name__}.{key}")
    assert unbounded == []


@pytest.mark.parametrize(("file", "text", "key"), [
    ("trader.yaml", "rpc_timeout: 1e308\n", "rpc_timeout"),
    ("trader.yaml", "rpc_timeout: .nan\n", "rpc_timeout"),
    ("position_sizing.yaml", "base_position_usd: 1e308\n", "base_position_usd"),
    ("trading_filters.yaml", "max_order_quantity: 1e308\n", "max_order_quantity"),
    ("trading_filters.yaml", "order_window_seconds: .inf\n", "order_window_seconds"),
    ("promotion.yaml", "min_sharpe: 1e308\n", "min_sharpe"),
    ("strategy_runtime.yaml", "strategies: [{name: a, module: a.py, class: A, conids: [1e20]}]\n", "conids"),
])
def test_out_of_bounds_numbers_are_refused_naming_key_and_file(mmr_home, file, text, key):
    from trader.config import PromotionConfig, StrategyRuntimeConfig

    paths = mmr_paths()
    ensure_user_config(paths)
    (paths.config_dir / file).write_text(text)
    with pytest.raises(ConfigError) as info:
        if file == "trader.yaml":
            load_trader_config(paths)
        else:
            cls = {"position_sizing.yaml": PositionSizingConfig, "trading_filters.yaml": TradingFiltersConfig,
                   "promotion.yaml": PromotionConfig, "strategy_runtime.yaml": StrategyRuntimeConfig}[file]
            load_section(file, cls, paths)
    assert key in str(info.value) and file in str(info.value)


def test_out_of_bounds_env_override_names_the_variable(mmr_home, monkeypatch):
    monkeypatch.setenv("RPC_TIMEOUT", "1e308")
    with pytest.raises(ConfigError, match="RPC_TIMEOUT"):
        load_trader_config()
