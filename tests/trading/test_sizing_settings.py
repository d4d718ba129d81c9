"""`session set` / `session reset`: sizing settings validated with the config's own bounds and written back."""

from __future__ import annotations

import pytest

from trader.config import PositionSizingConfig, load_section
from trader.errors import ConfigError
from trader.trading.risk_settings import set_sizing, write_settings


def test_set_sizing_validates_and_round_trips_through_the_file(tmp_path):
    cfg = PositionSizingConfig()
    new = set_sizing(cfg, "base_position_usd", "7500")
    assert new.base_position_usd == 7500.0 and new.max_position_usd == cfg.max_position_usd
    path = tmp_path / "position_sizing.yaml"
    path.write_text("# my sizing\nbase_position_usd: 5000.0  # per trade\nmethod: atr\n")
    write_settings(path, new, ["base_position_usd", "risk_multiplier"])
    text = path.read_text()
    assert "base_position_usd: 7500.0  # per trade" in text and "# my sizing" in text
    assert load_section("position_sizing.yaml", PositionSizingConfig, path=path).base_position_usd == 7500.0


@pytest.mark.parametrize(("key", "value"), [("base_position_usd", "-1"), ("risk_multiplier", "1e9"),
                                            ("method", "martingale"), ("base_position_usd", "nan"),
                                            ("base_position_usd", "999999999"), ("atr", "1"), ("nosuch", "1")])
def test_set_sizing_refuses_out_of_bounds_and_unknown_keys(key, value):
    with pytest.raises(ConfigError):
        set_sizing(PositionSizingConfig(), key, value)
