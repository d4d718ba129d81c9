"""Universes: CRUD, starter lists, CSV import that is all-or-nothing and names the bad row."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from trader.data.store import state_store
from trader.data.universes import UniverseStore, parse_csv, starter_universes
from trader.errors import InvalidUniverse, UniverseNotFound

SIM_CONTRACTS = Path(__file__).parents[2] / "trader" / "sim" / "data" / "contracts.csv"


@pytest.fixture
def universes(data_dir: Path) -> UniverseStore:
    return UniverseStore(state_store(data_dir))


def test_crud(universes: UniverseStore) -> None:
    universes.create("mine")
    assert universes.add_symbols("mine", ["aapl", "MSFT"]) == 2
    assert universes.add_symbols("mine", ["MSFT"]) == 0
    universes.set_conid("mine", "AAPL", 265598)
    assert [(m.symbol, m.conid) for m in universes.members("mine")] == [("AAPL", 265598), ("MSFT", None)]
    assert universes.remove("mine", ["msft", "XYZ"]) == 1
    with pytest.raises(InvalidUniverse, match="already exists"):
        universes.create("mine")
    universes.delete("mine")
    with pytest.raises(UniverseNotFound):
        universes.members("mine")
    with pytest.raises(InvalidUniverse, match="bad universe name"):
        universes.create("bad name!")


def test_csv_with_bad_row_imports_nothing(universes: UniverseStore) -> None:
    universes.create("x", [])
    text = "symbol,sec_type,exchange,currency\nAAPL,STK,SMART,USD\nMSFT,STK,SMART,USD\n$$$,STK,SMART,USD\n"
    with pytest.raises(InvalidUniverse, match="line 4"):
        universes.import_csv("x", text)
    with pytest.raises(InvalidUniverse, match="line 3: duplicate"):
        universes.import_csv("x", "symbol\nAAPL\naapl\n")
    with pytest.raises(InvalidUniverse, match="header"):
        universes.import_csv("x", "AAPL\nMSFT\n")
    assert universes.members("x") == []
    assert not universes.exists("y")
    with pytest.raises(InvalidUniverse, match="line 2"):
        universes.import_csv("y", "symbol,conid\nAAPL,notanumber\n")
    assert not universes.exists("y")  # not even created
    assert universes.import_csv("y", "symbol,conid\nAAPL,265598\n") == 1


def test_starter_universes_exist_and_demo_works_in_the_simulator(universes: UniverseStore) -> None:
    assert {"demo", "sp500"} <= set(starter_universes())
    listed = {u["name"]: u["symbols"] for u in universes.names()}
    assert listed["sp500"] > 100
    with SIM_CONTRACTS.open() as f:
        sim_symbols = {row["symbol"] for row in csv.DictReader(f)}
    demo = universes.members("demo")
    assert demo and {m.symbol for m in demo} <= sim_symbols
    assert parse_csv("symbol\nbrk b\n")[0].symbol == "BRK B"
