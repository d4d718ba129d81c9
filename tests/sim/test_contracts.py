"""The simulated contract universe: real conIds, IB-style lookup for every sec type, generated derivatives."""

from __future__ import annotations

import csv
from datetime import date, datetime
from importlib import resources

import pytest

from trader.sim.contracts import ContractUniverse, occ_local_symbol, third_friday

TODAY = date(2026, 11, 24)


@pytest.fixture(scope="module")
def universe() -> ContractUniverse:
    return ContractUniverse.load(today=TODAY)


def test_csv_has_a_few_hundred_symbols_with_unique_ids():
    rows = list(csv.DictReader(resources.files("trader.sim").joinpath("data/contracts.csv").read_text().splitlines()))
    assert len(rows) >= 250
    ids = [int(r["con_id"]) for r in rows]
    assert len(set(ids)) == len(ids)
    for r in rows:
        if r["placeholder_id"] == "1":
            assert 900_000_000 <= int(r["con_id"]) < 910_000_000, r
        else:
            assert int(r["con_id"]) < 900_000_000, r


@pytest.mark.parametrize(
    "symbol,con_id", [("AAPL", 265598), ("SPY", 756733), ("MSFT", 272093), ("IBM", 8314), ("QQQ", 320227571)]
)
def test_real_stock_con_ids(universe, symbol, con_id):
    found = universe.find(symbol=symbol, sec_type="STK", exchange="SMART", currency="USD")
    assert [c.con_id for c in found] == [con_id]
    assert not found[0].placeholder_id


def test_stock_lookup_semantics(universe):
    aapl = universe.by_con_id(265598)
    assert aapl.primary_exchange == "NASDAQ" and aapl.currency == "USD" and aapl.time_zone == "US/Eastern"
    assert universe.find(symbol="aapl", sec_type="STK") == [aapl]  # case-insensitive symbol
    assert universe.find(symbol="AAPL", sec_type="STK", exchange="NASDAQ") == [aapl]  # primary exchange
    assert universe.find(symbol="AAPL", sec_type="STK", exchange="ISLAND") == [aapl]  # IB alias
    assert universe.find(symbol="AAPL", sec_type="STK", currency="EUR") == []
    assert universe.find(symbol="AAPL", sec_type="STK", exchange="IBIS") == []
    assert universe.find(con_id=265598) == [aapl]
    assert universe.find(local_symbol="AAPL", sec_type="STK") == [aapl]
    assert universe.find() == []  # IB needs a symbol, localSymbol or conId


def test_international_stocks_on_home_exchanges(universe):
    sap = universe.find(symbol="SAP", sec_type="STK", exchange="IBIS", currency="EUR")
    toyota = universe.find(symbol="7203", sec_type="STK", exchange="TSEJ")
    bhp = universe.find(symbol="BHP", sec_type="STK", currency="AUD")
    vod = universe.find(symbol="VOD", sec_type="STK", exchange="LSE")
    assert len(sap) == len(toyota) == len(bhp) == len(vod) == 1
    assert toyota[0].currency == "JPY" and toyota[0].time_zone == "Asia/Tokyo"
    assert vod[0].currency == "GBP"
    assert sap[0].placeholder_id and sap[0].con_id >= 900_000_000


def test_fx_pairs(universe):
    eur = universe.find(symbol="EUR", sec_type="CASH", exchange="IDEALPRO", currency="USD")
    assert [c.con_id for c in eur] == [12087792]
    assert eur[0].local_symbol == "EUR.USD" and eur[0].trading_class == "EUR.USD"
    assert [c.con_id for c in universe.find(symbol="GBP", sec_type="CASH", currency="USD")] == [12087797]
    assert universe.find(local_symbol="USD.JPY")[0].con_id == 15016059
    for pair in ("AUD.USD", "USD.CAD", "USD.CHF"):
        assert len(universe.find(local_symbol=pair, sec_type="CASH")) == 1


def test_indices(universe):
    assert [c.con_id for c in universe.find(symbol="SPX", sec_type="IND", exchange="CBOE")] == [416904]
    assert [c.con_id for c in universe.find(symbol="NDX", sec_type="IND")] == [416843]
    assert [c.con_id for c in universe.find(symbol="VIX", sec_type="IND")] == [13455763]


def test_futures_are_quarterly_from_today(universe):
    es = universe.find(symbol="ES", sec_type="FUT", exchange="CME")
    assert [c.local_symbol for c in es] == ["ESZ6", "ESH7", "ESM7", "ESU7"]
    front = es[0]
    assert front.last_trade_date == "20261218" == third_friday(2026, 12).strftime("%Y%m%d")
    assert front.multiplier == "50" and front.min_tick == 0.25 and front.currency == "USD"
    assert front.underlying_con_id == 416904 and front.placeholder_id
    # GLOBEX is IB's old name for CME; a contract month selects the contract
    assert universe.find(symbol="ES", sec_type="FUT", exchange="GLOBEX", last_trade_date="202612") == [front]
    assert len(universe.find(symbol="MES", sec_type="FUT", last_trade_date="202612")) == 1
    assert universe.find(symbol="NQ", sec_type="FUT")[0].multiplier == "20"
    assert universe.find(symbol="MNQ", sec_type="FUT")[0].multiplier == "2"


def test_expiries_follow_today_and_ids_are_stable():
    later = ContractUniverse.load(today=date(2031, 2, 1))
    es = later.find(symbol="ES", sec_type="FUT")
    assert es[0].local_symbol == "ESH1" and es[0].last_trade_date == "20310321"
    again = ContractUniverse.load(today=TODAY)
    first = ContractUniverse.load(today=TODAY)
    key = {"symbol": "SPY", "sec_type": "OPT", "strike": 600.0, "right": "C", "last_trade_date": "20261218"}
    assert [c.con_id for c in again.find(**key)] == [c.con_id for c in first.find(**key)]


def test_stock_options(universe):
    calls = universe.find(symbol="SPY", sec_type="OPT", exchange="SMART", last_trade_date="20261218",
                          strike=600, right="C")
    assert len(calls) == 1
    opt = calls[0]
    assert opt.multiplier == "100" and opt.trading_class == "SPY" and opt.underlying_con_id == 756733
    assert opt.local_symbol == occ_local_symbol("SPY", "20261218", "C", 600) == "SPY   261218C00600000"
    assert universe.find(local_symbol="SPY   261218C00600000") == [opt]
    assert universe.find(symbol="SPY", sec_type="OPT", last_trade_date="20261218", strike=600, right="CALL") == [opt]
    puts = universe.find(symbol="AAPL", sec_type="OPT", right="P")
    assert puts and all(p.underlying_con_id == 265598 for p in puts)
    for c in puts:
        assert datetime.strptime(c.last_trade_date, "%Y%m%d").date() >= TODAY


def test_option_chain(universe):
    chain = universe.option_chain(756733)
    assert len(chain) == 1
    exchange, trading_class, multiplier, expirations, strikes = chain[0]
    assert (exchange, trading_class, multiplier) == ("SMART", "SPY", "100")
    assert "20261218" in expirations and "20261127" in expirations  # monthly + weekly
    assert expirations == sorted(expirations) and len(expirations) >= 5
    assert 600.0 in strikes and strikes == sorted(strikes)
    assert universe.option_chain(272093) == []  # MSFT has no options in the sim
    assert universe.derivative_sec_types(756733) == ["OPT"]


def test_future_options(universe):
    front = universe.find(symbol="ES", sec_type="FUT")[0]
    fops = universe.find(symbol="ES", sec_type="FOP", exchange="CME")
    assert fops and all(f.underlying_con_id == front.con_id and f.multiplier == "50" for f in fops)
    chain = universe.option_chain(front.con_id)
    assert chain[0][:3] == ("CME", "ES", "50")


def test_search(universe):
    assert universe.search("AAPL")[0].con_id == 265598
    names = [c.symbol for c in universe.search("micro")]
    assert "MSFT" in names and "AMD" in names  # name match: MICROSOFT, ADVANCED MICRO DEVICES
    assert all(c.sec_type in ("STK", "IND", "CASH") for c in universe.search("S"))
    assert len(universe.search("S")) <= 16
    assert universe.search("") == []


def test_every_sec_type_present(universe):
    kinds = {c.sec_type for c in universe}
    assert kinds == {"STK", "CASH", "FUT", "OPT", "FOP", "IND"}
    ids = [c.con_id for c in universe]
    assert len(ids) == len(set(ids))
