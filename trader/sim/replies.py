"""TWS reply builders, one per message, as the official client's ``decoder.py`` reads them.

Builders return field lists (``list[object]``); ``protocol.encode_msg(fields, server_version)`` turns one into
a frame. A field that exists only from (or only below) some server version is written as ``Since(v, value)``
/ ``Before(v, value)`` with the official client's ``MIN_SERVER_VER_*`` number, so one builder serves every
version the gateway accepts (157 … SERVER_VERSION) and the rule sits next to the field it governs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from trader.sim.protocol import Before, Out, Since, WireContract, WireOrder

# MIN_SERVER_VER_* (ibapi/server_versions.py) for the fields whose presence changes inside our range
DURATION = 158
POST_TO_ATS = 160
AUTO_CANCEL_PARENT = 162
FRACTIONAL_SIZE_SUPPORT = 163
SIZE_RULES = 164
ADVANCED_ORDER_REJECT = 166
PEGBEST_PEGMID_OFFSETS = 170
BOND_ISSUERID = 176
FA_PROFILE_DESUPPORT = 177
PENDING_PRICE_REVISION = 178
LAST_TRADE_DATE = 182
CUSTOMER_ACCOUNT = 183
PROFESSIONAL_CUSTOMER = 184
BOND_ACCRUED_INTEREST = 185
INELIGIBILITY_REASONS = 186
INCLUDE_OVERNIGHT = 189
CME_TAGGING_FIELDS_IN_OPEN_ORDER = 193
ERROR_TIME = 194
FULL_ORDER_PREVIEW_FIELDS = 195
HISTORICAL_DATA_END = 196
SUBMITTER = 198
IMBALANCE_ONLY = 199


def _strike(c: WireContract) -> object:
    return c.strike if c.strike else 0


def error_msg(req_id: int, code: int, message: str, time_ms: int | None = None) -> list[object]:
    """errorMsg (4): version 2 below 194; an empty advancedOrderRejectJson from server 166 on; the error's time
    (epoch milliseconds, default now) from 194 on."""
    when = int(time.time() * 1000) if time_ms is None else time_ms
    return [Out.ERR_MSG, Before(ERROR_TIME, 2), req_id, code, message, Since(ADVANCED_ORDER_REJECT, ""),
            Since(ERROR_TIME, when)]


def next_valid_id(order_id: int) -> list[object]:
    """nextValidId (9)."""
    return [Out.NEXT_VALID_ID, 1, order_id]


def managed_accounts(accounts: Sequence[str]) -> list[object]:
    """managedAccounts (15): comma-separated list."""
    return [Out.MANAGED_ACCTS, 1, ",".join(accounts)]


def current_time(epoch: int) -> list[object]:
    """currentTime (49)."""
    return [Out.CURRENT_TIME, 1, epoch]


def tick_price(req_id: int, tick_type: int, price: float, size: float | None = None) -> list[object]:
    """tickPrice (1): price and (for bid/ask/last) its size in one message; attribute mask 0."""
    return [Out.TICK_PRICE, 6, req_id, tick_type, price, "" if size is None else size, 0]


def tick_size(req_id: int, tick_type: int, size: float) -> list[object]:
    """tickSize (2)."""
    return [Out.TICK_SIZE, 6, req_id, tick_type, size]


def tick_string(req_id: int, tick_type: int, value: str) -> list[object]:
    """tickString (46)."""
    return [Out.TICK_STRING, 6, req_id, tick_type, value]


def tick_option_computation(req_id: int, tick_type: int, implied_vol: float, delta: float, opt_price: float,
                            pv_dividend: float, gamma: float, vega: float, theta: float,
                            und_price: float) -> list[object]:
    """tickOptionComputation (21): no version field from server 156 (price-based volatility) on; tickAttrib 0."""
    return [Out.TICK_OPTION_COMPUTATION, req_id, tick_type, 0, implied_vol, delta, opt_price, pv_dividend, gamma,
            vega, theta, und_price]


def tick_snapshot_end(req_id: int) -> list[object]:
    """tickSnapshotEnd (57)."""
    return [Out.TICK_SNAPSHOT_END, 1, req_id]


def market_data_type(req_id: int, data_type: int) -> list[object]:
    """marketDataType (58)."""
    return [Out.MARKET_DATA_TYPE, 1, req_id, data_type]


def tick_req_params(req_id: int, min_tick: float, bbo_exchange: str = "", permissions: int = 3) -> list[object]:
    """tickReqParams (81)."""
    return [Out.TICK_REQ_PARAMS, req_id, min_tick, bbo_exchange, permissions]


def tick_by_tick_bid_ask(req_id: int, epoch: int, bid: float, ask: float, bid_size: float,
                         ask_size: float) -> list[object]:
    """tickByTick (99), type 3 BidAsk."""
    return [Out.TICK_BY_TICK, req_id, 3, epoch, bid, ask, bid_size, ask_size, 0]


def tick_by_tick_last(req_id: int, tick_type: int, epoch: int, price: float, size: float,
                      exchange: str = "") -> list[object]:
    """tickByTick (99), type 1 Last / 2 AllLast."""
    return [Out.TICK_BY_TICK, req_id, tick_type, epoch, price, size, 0, exchange, ""]


def tick_by_tick_mid(req_id: int, epoch: int, mid: float) -> list[object]:
    """tickByTick (99), type 4 MidPoint."""
    return [Out.TICK_BY_TICK, req_id, 4, epoch, mid]


def market_depth(req_id: int, position: int, operation: int, side: int, price: float,
                 size: float) -> list[object]:
    """updateMktDepth (12): operation 0 insert / 1 update / 2 delete; side 0 ask / 1 bid."""
    return [Out.MARKET_DEPTH, 1, req_id, position, operation, side, price, size]


def real_time_bar(req_id: int, epoch: int, o: float, h: float, low: float, c: float, volume: float,
                  wap: float, count: int) -> list[object]:
    """realtimeBar (50)."""
    return [Out.REAL_TIME_BARS, 3, req_id, epoch, o, h, low, c, volume, wap, count]


def historical_data(req_id: int, start: str, end: str, bars: Sequence[tuple]) -> list[object]:
    """historicalData (17): bars are (date, open, high, low, close, volume, wap, count); the range's start
    and end travel in the message below 196 and in historicalDataEnd from 196 on."""
    out: list[object] = [Out.HISTORICAL_DATA, req_id, Before(HISTORICAL_DATA_END, start),
                         Before(HISTORICAL_DATA_END, end), len(bars)]
    for bar in bars:
        out.extend(bar)
    return out


def historical_data_end(req_id: int, start: str, end: str) -> list[object]:
    """historicalDataEnd (108), sent after historicalData from server 196 on."""
    return [Out.HISTORICAL_DATA_END, req_id, start, end]


def current_time_in_millis(epoch_ms: int) -> list[object]:
    """currentTimeInMillis (109)."""
    return [Out.CURRENT_TIME_IN_MILLIS, epoch_ms]


def historical_data_update(req_id: int, bar: tuple) -> list[object]:
    """historicalDataUpdate (90) for keepUpToDate: bar is (date, open, high, low, close, volume, wap, count),
    sent in the message's own order (barCount, date, open, close, high, low, average, volume)."""
    date, o, h, low, c, volume, wap, count = bar
    return [Out.HISTORICAL_DATA_UPDATE, req_id, count, date, o, c, h, low, wap, volume]


def head_timestamp(req_id: int, stamp: str) -> list[object]:
    """headTimestamp (88)."""
    return [Out.HEAD_TIMESTAMP, req_id, stamp]


def contract_details(req_id: int, c: WireContract, *, market_name: str, min_tick: float, order_types: str,
                     valid_exchanges: str, price_magnifier: int, under_con_id: int, long_name: str,
                     contract_month: str, industry: str, category: str, subcategory: str, time_zone: str,
                     trading_hours: str, liquid_hours: str, under_symbol: str, under_sec_type: str,
                     stock_type: str, sec_ids: Sequence[tuple[str, str]] = (),
                     md_size_multiplier: int = 1) -> list[object]:
    """contractData (10): a message version (8) and mdSizeMultiplier only below 164, where 163 alone carries
    sizeMinTick and 164+ the size rules; ``sec_ids`` are (type, id) pairs such as ("ISIN", "US0378331005")."""
    return [
        Out.CONTRACT_DATA, Before(SIZE_RULES, 8), req_id, c.symbol, c.sec_type, c.last_trade_date,
        Since(LAST_TRADE_DATE, c.last_trade_date), _strike(c),
        c.right, c.exchange, c.currency, c.local_symbol, market_name, c.trading_class, c.con_id, min_tick,
        Before(SIZE_RULES, md_size_multiplier), c.multiplier, order_types, valid_exchanges, price_magnifier,
        under_con_id, long_name.encode("unicode-escape").decode(),  # clients unicode-unescape longName
        c.primary_exchange, contract_month, industry, category, subcategory, time_zone, trading_hours,
        liquid_hours, "", "",  # evRule, evMultiplier
        len(sec_ids), *[f for pair in sec_ids for f in pair],
        "", under_symbol, under_sec_type, "", c.last_trade_date, stock_type,  # aggGroup … stockType
        Since(FRACTIONAL_SIZE_SUPPORT, Before(SIZE_RULES, "1")),  # sizeMinTick (163 only)
        Since(SIZE_RULES, "1"), Since(SIZE_RULES, "1"), Since(SIZE_RULES, "1"),  # minSize, sizeIncr., suggested
        Since(INELIGIBILITY_REASONS, 0),  # (fund fields from 179 go to secType FUND only: none here)
    ]


def contract_details_end(req_id: int) -> list[object]:
    """contractDataEnd (52)."""
    return [Out.CONTRACT_DATA_END, 1, req_id]


def symbol_samples(req_id: int, rows: Sequence[tuple[WireContract, Sequence[str], str]]) -> list[object]:
    """symbolSamples (79): rows are (contract, derivative sec types, description)."""
    out: list[object] = [Out.SYMBOL_SAMPLES, req_id, len(rows)]
    for c, derivs, description in rows:
        out += [c.con_id, c.symbol, c.sec_type, c.primary_exchange, c.currency, len(derivs), *derivs]
        out += [Since(BOND_ISSUERID, description), Since(BOND_ISSUERID, "")]  # description, issuerId
    return out


def sec_def_opt_params(req_id: int, exchange: str, under_con_id: int, trading_class: str, multiplier: str,
                       expirations: Sequence[str], strikes: Sequence[float]) -> list[object]:
    """securityDefinitionOptionParameter (75)."""
    return [Out.SECURITY_DEFINITION_OPTION_PARAMETER, req_id, exchange, under_con_id, trading_class,
            multiplier, len(expirations), *expirations, len(strikes), *strikes]


def sec_def_opt_params_end(req_id: int) -> list[object]:
    """securityDefinitionOptionParameterEnd (76)."""
    return [Out.SECURITY_DEFINITION_OPTION_PARAMETER_END, req_id]


def _contract_fields(c: WireContract, exchange: str | None = None) -> list[object]:
    """conId … tradingClass (11 fields, no primaryExchange) as openOrder/execDetails/position carry it."""
    return [c.con_id, c.symbol, c.sec_type, c.last_trade_date, _strike(c), c.right, c.multiplier,
            c.exchange if exchange is None else exchange, c.currency, c.local_symbol, c.trading_class]



def open_order(c: WireContract, o: WireOrder) -> list[object]:
    """openOrder (5): faProfile below 177; duration 158+, postToAts 160+, autoCancelParent 162+, peg 170+."""
    margin = list(o.margin) if o.margin else [""] * 9
    return [
        Out.OPEN_ORDER, o.order_id, *_contract_fields(c),
        o.action, o.total_quantity, o.order_type, o.lmt_price, o.aux_price, o.tif, o.oca_group, o.account,
        "", 0, o.order_ref, o.client_id, o.perm_id, o.outside_rth,  # openClose, origin … outsideRth
        False, 0.0, "", "",  # hidden, discretionaryAmt, goodAfterTime, deprecated sharesAllocation
        "", "", "", Before(FA_PROFILE_DESUPPORT, ""),  # faGroup, faMethod, faPercentage, faProfile
        "", "", "", "", "",  # modelCode, goodTillDate, rule80A, percentOffset, settlingFirm
        0, "", "",  # shortSaleSlot, designatedLocation, exemptCode
        0, "", "", "", "", "",  # auctionStrategy, startingPrice, stockRefPrice, delta, stockRangeLower/Upper
        "", False, False, False, "",  # displaySize, blockOrder, sweepToFill, allOrNone, minQty
        o.oca_type, False, False, "",  # ocaType, eTradeOnly, firmQuoteOnly, nbboPriceCap
        o.parent_id, 0, "", "", "", "",  # parentId, triggerMethod, volatility, volatilityType, dnType, dnAux
        False, "", o.trail_stop_price, o.trailing_percent,  # continuousUpdate … trailingPercent
        "", "", "",  # basisPoints, basisPointsType, comboLegsDescrip
        *_combo_fields(o), 0, 0,  # comboLegs, orderComboLegs, smartComboRoutingParams
        "", "", "",  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
        "",  # hedgeType
        False, "", "", False, False,  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld, dnc
        "",  # algoStrategy
        False, o.what_if, o.status, *margin,  # solicited, whatIf, orderState status + 9 margin fields
        o.commission, "", "", o.commission_currency,  # commission, min/max commission, currency
        *[Since(FULL_ORDER_PREVIEW_FIELDS, x) for x in ("",) * 12 + (0,)],  # marginCurrency … rejectReason, 0 allocs
        o.warning_text,
        False, False,  # randomizeSize, randomizePrice
        0,  # conditions
        "", "", o.trail_stop_price, o.lmt_price_offset,  # adjustedOrderType, triggerPrice, trailStop, offset
        "", "", "", 0,  # adjustedStopPrice, adjustedStopLimitPrice, adjustedTrailingAmount, adjustableUnit
        "", "", "",  # softDollarTier name, val, displayName
        "", False, False, "", False,  # cashQty … usePriceMgmtAlgo
        Since(DURATION, ""), Since(POST_TO_ATS, ""), Since(AUTO_CANCEL_PARENT, False),
        *_peg_best_fields(),  # minTradeQty, minCompeteSize, competeAgainstBestOffset, midOffsetAt*
        Since(CUSTOMER_ACCOUNT, ""), Since(PROFESSIONAL_CUSTOMER, False), Since(BOND_ACCRUED_INTEREST, ""),
        Since(INCLUDE_OVERNIGHT, False), Since(CME_TAGGING_FIELDS_IN_OPEN_ORDER, ""),  # … extOperator
        Since(CME_TAGGING_FIELDS_IN_OPEN_ORDER, ""), Since(SUBMITTER, ""), Since(IMBALANCE_ONLY, False),
    ]


def _combo_fields(o: WireOrder) -> list[object]:
    """A BAG order's legs: count, then conId, ratio, action, exchange, openClose, shortSaleSlot,
    designatedLocation, exemptCode per leg."""
    out: list[object] = [len(o.combo_legs)]
    for con_id, ratio, action, exchange in o.combo_legs:
        out += [con_id, ratio, action, exchange, 0, 0, "", -1]
    return out


def _peg_best_fields() -> list[object]:
    """The five PEG BEST / PEG MID attributes open and completed orders carry from server 170 on."""
    return [Since(PEGBEST_PEGMID_OFFSETS, "")] * 5


def open_order_end() -> list[object]:
    """openOrderEnd (53)."""
    return [Out.OPEN_ORDER_END, 1]


def completed_order(c: WireContract, o: WireOrder) -> list[object]:
    """completedOrder (101): faProfile below 177, peg attributes from 170."""
    return [
        Out.COMPLETED_ORDER, *_contract_fields(c),
        o.action, o.total_quantity, o.order_type, o.lmt_price, o.aux_price, o.tif, o.oca_group, o.account,
        "", 0, o.order_ref, o.perm_id, o.outside_rth,  # openClose, origin, orderRef, permId, outsideRth
        False, 0.0, "",  # hidden, discretionaryAmt, goodAfterTime
        "", "", "", Before(FA_PROFILE_DESUPPORT, ""),  # faGroup, faMethod, faPercentage, faProfile
        "", "", "", "", "",  # modelCode, goodTillDate, rule80A, percentOffset, settlingFirm
        0, "", "",  # shortSaleSlot, designatedLocation, exemptCode
        "", "", "", "", "",  # startingPrice, stockRefPrice, delta, stockRangeLower, stockRangeUpper
        "", False, False, "", o.oca_type,  # displaySize, sweepToFill, allOrNone, minQty, ocaType
        0, "", "", "", "",  # triggerMethod, volatility, volatilityType, dnOrderType, dnAuxPrice
        False, "", o.trail_stop_price, o.trailing_percent, "",  # continuousUpdate … comboLegsDescrip
        *_combo_fields(o), 0, 0,  # comboLegs, orderComboLegs, smartComboRoutingParams
        "", "", "",  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
        "",  # hedgeType
        "", "", False, False,  # clearingAccount, clearingIntent, notHeld, dnc
        "",  # algoStrategy
        False, o.status, False, False,  # solicited, status, randomizeSize, randomizePrice
        0,  # conditions
        o.trail_stop_price, o.lmt_price_offset, "", False, False,  # … cashQty, dontUseAuto…, isOmsContainer
        "", o.filled, 0, False, "", False, False,  # autoCancelDate … routeMarketableToBbo
        0, o.completed_time, o.completed_status,  # parentPermId, completedTime, completedStatus
        *_peg_best_fields(),
        Since(CUSTOMER_ACCOUNT, ""), Since(PROFESSIONAL_CUSTOMER, False), Since(SUBMITTER, ""),
    ]


def completed_orders_end() -> list[object]:
    """completedOrdersEnd (102)."""
    return [Out.COMPLETED_ORDERS_END]


def order_status(order_id: int, status: str, filled: float, remaining: float, avg_fill_price: float,
                 perm_id: int, parent_id: int, last_fill_price: float, client_id: int,
                 why_held: str = "") -> list[object]:
    """orderStatus (3) at server ≥ MARKET_CAP_PRICE (no version field)."""
    return [Out.ORDER_STATUS, order_id, status, filled, remaining, avg_fill_price, perm_id, parent_id,
            last_fill_price, client_id, why_held, 0.0]


def exec_details(req_id: int, order_id: int, c: WireContract, *, exec_id: str, time: str, account: str,
                 exchange: str, side: str, shares: float, price: float, perm_id: int, client_id: int,
                 cum_qty: float, avg_price: float, order_ref: str) -> list[object]:
    """execDetails (11): pendingPriceRevision from server 178 on."""
    return [Out.EXECUTION_DATA, req_id, order_id, *_contract_fields(c, exchange), exec_id, time, account,
            exchange, side, shares, price, perm_id, client_id, 0, cum_qty, avg_price, order_ref, "", "", "",
            1, Since(PENDING_PRICE_REVISION, False),  # evRule, evMultiplier, modelCode, lastLiquidity=1 (added)
            Since(SUBMITTER, "")]


def exec_details_end(req_id: int) -> list[object]:
    """execDetailsEnd (55)."""
    return [Out.EXECUTION_DATA_END, 1, req_id]


def commission_report(exec_id: str, commission: float, currency: str, realized_pnl: float | None) -> list[object]:
    """commissionReport (59): realized P&L unset (UNSET_DOUBLE) on opening fills, as IB does."""
    return [Out.COMMISSION_REPORT, 1, exec_id, commission, currency,
            "1.7976931348623157E308" if realized_pnl is None else realized_pnl,
            "1.7976931348623157E308", ""]


def position(account: str, c: WireContract, pos: float, avg_cost: float) -> list[object]:
    """position (61), version 3."""
    return [Out.POSITION_DATA, 3, account, *_contract_fields(c), pos, avg_cost]


def position_end() -> list[object]:
    """positionEnd (62)."""
    return [Out.POSITION_END, 1]


def portfolio_value(c: WireContract, pos: float, market_price: float, market_value: float, avg_cost: float,
                    unrealized: float, realized: float, account: str) -> list[object]:
    """updatePortfolio (7), version 8: the contract carries primaryExchange instead of exchange."""
    return [Out.PORTFOLIO_VALUE, 8, c.con_id, c.symbol, c.sec_type, c.last_trade_date, _strike(c), c.right,
            c.multiplier, c.primary_exchange, c.currency, c.local_symbol, c.trading_class, pos, market_price,
            market_value, avg_cost, unrealized, realized, account]


def account_value(key: str, value: str, currency: str, account: str) -> list[object]:
    """updateAccountValue (6)."""
    return [Out.ACCT_VALUE, 2, key, value, currency, account]


def account_update_time(hhmm: str) -> list[object]:
    """updateAccountTime (8)."""
    return [Out.ACCT_UPDATE_TIME, 1, hhmm]


def account_download_end(account: str) -> list[object]:
    """accountDownloadEnd (54)."""
    return [Out.ACCT_DOWNLOAD_END, 1, account]


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> list[object]:
    """accountSummary (63)."""
    return [Out.ACCOUNT_SUMMARY, 1, req_id, account, tag, value, currency]


def account_summary_end(req_id: int) -> list[object]:
    """accountSummaryEnd (64)."""
    return [Out.ACCOUNT_SUMMARY_END, 1, req_id]


def account_update_multi(req_id: int, account: str, model_code: str, key: str, value: str,
                         currency: str) -> list[object]:
    """accountUpdateMulti (73)."""
    return [Out.ACCOUNT_UPDATE_MULTI, 1, req_id, account, model_code, key, value, currency]


def account_update_multi_end(req_id: int) -> list[object]:
    """accountUpdateMultiEnd (74)."""
    return [Out.ACCOUNT_UPDATE_MULTI_END, 1, req_id]


def pnl(req_id: int, daily: float, unrealized: float, realized: float) -> list[object]:
    """pnl (94)."""
    return [Out.PNL, req_id, daily, unrealized, realized]


def pnl_single(req_id: int, pos: float, daily: float, unrealized: float, realized: float,
               value: float) -> list[object]:
    """pnlSingle (95)."""
    return [Out.PNL_SINGLE, req_id, pos, daily, unrealized, realized, value]


def market_rule(rule_id: int, increments: Sequence[tuple[float, float]]) -> list[object]:
    """marketRule (93): (lowEdge, increment) pairs."""
    out: list[object] = [Out.MARKET_RULE, rule_id, len(increments)]
    for low, inc in increments:
        out += [low, inc]
    return out


def mkt_depth_exchanges(rows: Sequence[tuple[str, str, str, str, int]]) -> list[object]:
    """mktDepthExchanges (80): (exchange, secType, listingExch, serviceDataType, aggGroup)."""
    out: list[object] = [Out.MKT_DEPTH_EXCHANGES, len(rows)]
    for row in rows:
        out.extend(row)
    return out


def user_info(req_id: int) -> list[object]:
    """userInfo (107)."""
    return [Out.USER_INFO, req_id, ""]
