"""Contract lookup through ib_async: qualify each security type, 200 on no match, matching symbols, chains."""

from __future__ import annotations

from ib_async import Contract, Forex, Future, Index, Option, Stock

from trader.sim.testkit import connected
from trader.testing import run_async


@run_async
async def test_qualify_stock_forex_and_index(tmp_path):
    async with connected(tmp_path) as (_gw, ib):
        aapl, spy, eur, spx = await ib.qualifyContractsAsync(
            Stock("AAPL", "SMART", "USD"), Stock("SPY", "SMART", "USD"), Forex("EURUSD"), Index("SPX", "CBOE"))
        assert aapl.conId == 265598 and aapl.primaryExchange == "NASDAQ"
        assert spy.conId == 756733
        assert eur.secType == "CASH" and eur.localSymbol == "EUR.USD" and eur.conId > 0
        assert spx.secType == "IND" and spx.conId > 0
        [details] = await ib.reqContractDetailsAsync(Stock("AAPL", "SMART", "USD"))
        assert details.longName.upper().startswith("APPLE")
        assert details.minTick == 0.01 and details.timeZoneId == "US/Eastern"
        assert details.liquidHours  # IB-format session text is filled in


@run_async
async def test_futures_several_matches_then_one_and_options_via_chain(tmp_path):
    async with connected(tmp_path) as (_gw, ib):
        all_es = await ib.reqContractDetailsAsync(Future("ES", exchange="CME"))
        assert len(all_es) >= 2  # one contractDetails per expiry, like IB
        expiry = all_es[0].contract.lastTradeDateOrContractMonth
        [es] = await ib.qualifyContractsAsync(Future("ES", expiry, "CME"))
        assert es.conId == all_es[0].contract.conId and es.multiplier == "50"

        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        chains = await ib.reqSecDefOptParamsAsync("AAPL", "", "STK", aapl.conId)
        assert chains and chains[0].expirations and chains[0].strikes
        chain = chains[0]
        strike = chain.strikes[len(chain.strikes) // 2]
        [opt] = await ib.qualifyContractsAsync(
            Option("AAPL", chain.expirations[0], strike, "C", "SMART", tradingClass=chain.tradingClass))
        assert opt is not None and opt.secType == "OPT" and opt.multiplier == "100"

        es_chains = await ib.reqSecDefOptParamsAsync("ES", "CME", "FUT", es.conId)
        assert es_chains
        fop_row = es_chains[0]
        fop = Contract(secType="FOP", symbol="ES", exchange="CME", lastTradeDateOrContractMonth=fop_row.expirations[0],
                       strike=fop_row.strikes[len(fop_row.strikes) // 2], right="P",
                       tradingClass=fop_row.tradingClass)
        [fop_q] = await ib.qualifyContractsAsync(fop)
        assert fop_q is not None and fop_q.secType == "FOP" and fop_q.conId > 0


@run_async
async def test_unknown_contract_gets_error_200_and_matching_symbols_work(tmp_path):
    async with connected(tmp_path) as (_gw, ib):
        errors: list[int] = []
        ib.errorEvent += lambda req_id, code, msg, contract: errors.append(code)
        [none] = await ib.qualifyContractsAsync(Stock("NOSUCHSYM", "SMART", "USD"))
        assert none is None
        assert 200 in errors
        matches = await ib.reqMatchingSymbolsAsync("AAP")
        assert matches and matches[0].contract.symbol == "AAPL"
        assert "OPT" in matches[0].derivativeSecTypes
