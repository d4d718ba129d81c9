"""Golden frames: every reply builder, at every server version the gateway accepts, read by clients we did not write.

For each message and each version 157 … SERVER_VERSION the frame is decoded by the official ``ibapi`` decoder
(which must consume every field: a left-over or missing field is a mis-framed message), by ``ib_async`` and —
up to its own top version 176 — by ``ib_insync``; the decoded values must be the ones we put in. A few frames
are pinned byte for byte at 176 and 178, the two versions real clients negotiate most.
"""

from __future__ import annotations

import functools
import struct
from datetime import UTC
from types import SimpleNamespace

import pytest

from trader.sim import protobuf as PB
from trader.sim import protocol as P
from trader.sim import replies as R
from trader.sim import session_discovery as D
from trader.sim.protocol import WireContract, WireOrder

VERSIONS = range(P.MIN_CLIENT_VERSION, P.SERVER_VERSION + 1)
AAPL = WireContract(con_id=265598, symbol="AAPL", sec_type="STK", exchange="SMART", primary_exchange="NASDAQ",
                    currency="USD", local_symbol="AAPL", trading_class="NMS")
TRAIL = WireOrder(order_id=7, client_id=3, perm_id=900001, action="SELL", total_quantity=10.0, order_type="TRAIL",
                  lmt_price=None, aux_price=2.5, tif="GTC", oca_group="", account="DU0000001", order_ref="stop",
                  outside_rth=False, parent_id=6, oca_type=3, trail_stop_price=230.5, trailing_percent=None,
                  lmt_price_offset=None, status="Submitted", filled=0.0, commission=None,
                  completed_time="20260302 15:00:00 UTC", completed_status="Filled")


def _details() -> list[object]:
    return R.contract_details(
        4, AAPL, market_name="NMS", min_tick=0.01, order_types="LMT,MKT", valid_exchanges="SMART,NASDAQ",
        price_magnifier=1, under_con_id=0, long_name="APPLE INC", contract_month="", industry="Technology",
        category="Computers", subcategory="", time_zone="US/Eastern", trading_hours="20260302:0400-20260302:2000",
        liquid_hours="20260302:0930-20260302:1600", under_symbol="", under_sec_type="", stock_type="COMMON",
        sec_ids=[("ISIN", "US0378331005")])


# message name → (builder output, ibapi wrapper method it must reach, check of that call's arguments)
MESSAGES = {
    "errorMsg": (R.error_msg(5, 201, "Order rejected - reason:test"), "error",
                 lambda a: a[0] == 5 and 201 in a and "Order rejected - reason:test" in a),
    "contractData": (_details(), "contractDetails",
                     lambda a: a[1].contract.conId == 265598 and a[1].secIdList[0].value == "US0378331005"
                     and a[1].stockType == "COMMON" and a[1].contract.primaryExchange == "NASDAQ"),
    "openOrder": (R.open_order(AAPL, TRAIL), "openOrder",
                  lambda a: a[0] == 7 and a[2].trailStopPrice == 230.5 and a[2].auxPrice == 2.5
                  and str(a[2].totalQuantity) == "10" and a[2].parentId == 6 and a[3].status == "Submitted"),
    "completedOrder": (R.completed_order(AAPL, TRAIL), "completedOrder",
                       lambda a: a[1].permId == 900001 and a[2].completedStatus == "Filled"
                       and a[1].trailStopPrice == 230.5),
    "execDetails": (R.exec_details(-1, 7, AAPL, exec_id="0001f4e8.67d1a2b3.01.01", time="20260302 15:00:01 UTC",
                                   account="DU0000001", exchange="NASDAQ", side="SLD", shares=10.0, price=233.13,
                                   perm_id=900001, client_id=3, cum_qty=10.0, avg_price=233.13, order_ref="stop"),
                    "execDetails", lambda a: a[2].execId == "0001f4e8.67d1a2b3.01.01" and a[2].price == 233.13
                    and str(a[2].shares) == "10" and a[2].lastLiquidity == 1),
    "symbolSamples": (R.symbol_samples(8, [(AAPL, ["OPT", "WAR"], "APPLE INC")]), "symbolSamples",
                      lambda a: a[1][0].contract.conId == 265598 and a[1][0].derivativeSecTypes == ["OPT", "WAR"]),
    "orderStatus": (R.order_status(7, "Filled", 10.0, 0.0, 233.13000000000002, 900001, 0, 233.13, 3), "orderStatus",
                    lambda a: a[1] == "Filled" and str(a[2]) == "10" and a[4] == 233.13),
    "commissionReport": (R.commission_report("0001f4e8.67d1a2b3.01.01", 1.0, "USD", None), None, None),
    "position": (R.position("DU0000001", AAPL, 10.0, 233.13), "position",
                 lambda a: a[1].conId == 265598 and str(a[2]) == "10" and a[3] == 233.13),
    "portfolioValue": (R.portfolio_value(AAPL, 10.0, 233.11999999999998, 2331.2, 233.13, -0.1, 0.0, "DU0000001"),
                       "updatePortfolio", lambda a: a[2] == 233.12 and str(a[1]) == "10"),
    "tickPrice": (R.tick_price(3, 1, 233.12, 300.0), "tickPrice", lambda a: a[0] == 3 and a[2] == 233.12),
    "historicalData": (R.historical_data(9, "20260301 00:00:00 UTC", "20260302 00:00:00 UTC",
                                         [("20260302", 230.0, 234.5, 229.75, 233.13, 5_000_000.0, 232.1, 4000)]),
                       "historicalData", lambda a: a[0] == 9 and a[1].close == 233.13),
    "accountSummary": (R.account_summary(2, "DU0000001", "NetLiquidation", "1000000.00", "USD"), "accountSummary",
                       lambda a: a[2] == "NetLiquidation"),
    "nextValidId": (R.next_valid_id(12), "nextValidId", lambda a: a[0] == 12),
}


class _Recorder:
    """A stand-in wrapper for any decoder: records every callback with its arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []
        self.ib = SimpleNamespace(TimezoneTWS=None)  # ib_async/ib_insync execDetails consult these
        self.defaultTimezone = UTC

    def __getattr__(self, name: str):
        return lambda *args, **kw: self.calls.append((name, args))


def _wire_fields(fields: list[object], version: int) -> list[str]:
    """The text fields a client reads, exactly as framed on the socket."""
    buf = P.FrameBuffer()
    (msg,) = buf.feed(P.encode_msg(fields, version))
    return msg


@functools.cache
def _ibapi_decoder(version: int):
    from ibapi.decoder import Decoder

    return Decoder(None, version)  # built once per version: its constructor inspects every EWrapper method


def _ibapi_decode(fields: list[str], version: int) -> _Recorder:
    """Run the official decoder's handler on one message; it must consume every field."""
    rec = _Recorder()
    dec = _ibapi_decoder(version)
    dec.wrapper = rec
    info = dec.msgId2handleInfo[int(fields[0])]
    raw = tuple(f.encode() for f in fields[1:])
    if info.processMeth is None:  # simple messages: the field count must match the callback exactly
        assert len(raw) - 1 == len(info.wrapperParams) - 1, f"ibapi v{version}: {len(raw)} fields"
        dec.interpretWithSignature(raw, info)
        return rec
    it = iter(raw)
    info.processMeth(dec, it)
    left = list(it)
    assert left == [], f"ibapi v{version} left fields unread: {left}"
    return rec


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", MESSAGES)
def test_official_ibapi_reads_every_field_at_every_version(name, version):
    fields, method, check = MESSAGES[name]
    rec = _ibapi_decode(_wire_fields(fields, version), version)
    if method is None:
        assert rec.calls, f"{name}: no callback"
        return
    calls = [args for m, args in rec.calls if m == method]
    assert calls, f"{name} v{version}: ibapi never called {method} (got {[m for m, _ in rec.calls]})"
    assert check(calls[0]), f"{name} v{version}: {calls[0]}"


@pytest.mark.parametrize("version", VERSIONS)
def test_ib_async_and_ib_insync_decode_every_message(version):
    from ib_async.decoder import Decoder as AsyncDecoder

    decoders = [AsyncDecoder] if version <= 178 else []  # ib_async 2.x negotiates at most 178
    if version <= 176:  # ib_insync 0.9.86 negotiates at most 176
        from ib_insync.decoder import Decoder as InsyncDecoder

        decoders.append(InsyncDecoder)
    for cls in decoders:
        for name, (fields, _method, _check) in MESSAGES.items():
            rec = _Recorder()
            dec = cls(rec, version)
            wire = _wire_fields(fields, version)
            dec.handlers[int(wire[0])](wire)  # called directly: interpret() would log and swallow errors
            assert rec.calls, f"{cls.__module__} v{version}: {name} made no callback"


def test_version_gated_fields_follow_ibs_rules():
    err176, err165 = _wire_fields(R.error_msg(1, 2, "x"), 176), _wire_fields(R.error_msg(1, 2, "x"), 165)
    assert err176 == ["4", "2", "1", "2", "x", ""] and err165 == ["4", "2", "1", "2", "x"]
    n = {v: len(_wire_fields(R.open_order(AAPL, TRAIL), v)) for v in (157, 158, 160, 162, 170, 176, 177, 178)}
    # +duration, +postToAts, +autoCancelParent, +5 peg fields, -faProfile at 177
    assert [n[158] - n[157], n[160] - n[158], n[162] - n[160], n[170] - n[162], n[177] - n[176]] == [1, 1, 1, 5, -1]
    ex = {v: _wire_fields(MESSAGES["execDetails"][0], v) for v in (177, 178)}
    assert len(ex[178]) == len(ex[177]) + 1 and ex[178][-1] == "0"
    cd = {v: _wire_fields(_details(), v) for v in (162, 163, 164)}
    assert cd[162][1] == "8" and cd[164][1] == "4"  # message version below 164, reqId first from 164
    assert len(cd[163]) == len(cd[162]) + 1 and len(cd[164]) == len(cd[162]) + 3 - 2


def test_a_gated_message_without_a_version_is_refused():
    with pytest.raises(ValueError, match="server version"):
        P.encode_msg(R.error_msg(1, 2, "x"))


def test_numbers_go_out_as_ib_writes_them():
    assert [P.fmt(x) for x in (10.0, -3.0, 0.0, 233.13000000000002, 233.11999999999998, 1.08765, 2.5)] == \
        ["10", "-3", "0", "233.13", "233.12", "1.08765", "2.5"]
    assert P.fmt(P.UNSET_DOUBLE) == "" and P.fmt(float("inf")) == "Infinite"


GOLDEN = {
    ("execDetails", 176): "11\0-1\0007\000265598\0AAPL\0STK\0\0000\0\0\0NASDAQ\0USD\0AAPL\0NMS\0"
                          "0001f4e8.67d1a2b3.01.01\00020260302 15:00:01 UTC\0DU0000001\0NASDAQ\0SLD\00010\0"
                          "233.13\0900001\0003\0000\00010\000233.13\0stop\0\0\0\0001\0",
    ("errorMsg", 178): "4\0002\0005\000201\0Order rejected - reason:test\0\0",
    ("orderStatus", 176): "3\0007\0Filled\00010\0000\000233.13\0900001\0000\000233.13\0003\0\0000\0",
}


@pytest.mark.parametrize(("name", "version"), list(GOLDEN))
def test_golden_bytes(name, version):
    payload = P.encode_msg(MESSAGES[name][0], version)[4:]
    assert payload.decode() == GOLDEN[(name, version)]


PROTOBUF_MESSAGES = [name for name, (fields, _m, _c) in MESSAGES.items()
                     if PB.wants(int(fields[0]), PB.MAX_PROTOBUF_VERSION)]


@pytest.mark.parametrize("name", PROTOBUF_MESSAGES)
def test_protobuf_replies_read_by_the_official_client(name):
    """From 201 these replies go out as IB's protobuf messages: the official decoder's protobuf path must reach
    the same callback with the same values as the text path."""
    fields, method, check = MESSAGES[name]
    frame = PB.encode_reply(fields)
    payload = frame[4:]
    assert struct.unpack(">I", frame[:4])[0] == len(payload)
    msg_id = int.from_bytes(payload[:4], "big")
    assert msg_id == int(fields[0]) + PB.MSG_ID_OFFSET
    rec = _Recorder()
    dec = _ibapi_decoder(PB.MAX_PROTOBUF_VERSION)
    dec.wrapper = rec
    dec.processProtoBuf(payload[4:], msg_id - PB.MSG_ID_OFFSET)
    names = [m for m, _ in rec.calls]
    assert any(m.endswith("ProtoBuf") for m in names), names  # it really took the protobuf path
    if method is None:
        assert len(names) >= 2
        return
    calls = [args for m, args in rec.calls if m == method]
    assert calls and check(calls[0]), (name, calls)


SMALL_PROTOBUF = [R.open_order_end(), R.exec_details_end(4), R.completed_orders_end(),
    R.contract_details_end(4), R.position_end(), R.account_summary_end(2),
    R.historical_data_end(9, "20260301 00:00:00 UTC", "20260302 00:00:00 UTC"),
    R.historical_data(9, "", "", []), R.account_download_end("DU0000001"),
    R.account_value("NetLiquidation", "1000000", "USD", "DU0000001"),
    R.account_update_time("15:00"), R.managed_accounts(["DU0000001"]),
    R.historical_data_update(9, ("20260302 15:00:00", 1.0, 2.0, 0.5, 1.5, 100.0,
                                 1.2, 3)),
    R.tick_size(3, 8, 1200.0), R.tick_string(3, 45, "1772463600"),
    R.tick_option_computation(3, 13, 0.2, 0.5, 4.1, 0.0, 0.03, 0.2, -0.05, 230.0),
    R.tick_snapshot_end(3), R.market_data_type(3, 1), R.tick_req_params(3, 0.01),
    R.real_time_bar(5, 1772463600, 1.0, 2.0, 0.5, 1.5, 100.0, 1.2, 3),
    R.head_timestamp(6, "20250102 14:30:00"), R.pnl(7, 1.5, -2.0, 0.0),
    R.pnl_single(8, 10.0, 1.5, -2.0, 0.0, 2331.2), R.current_time(1772463600),
    R.market_depth(3, 0, 0, 1, 233.12, 300.0),
    R.tick_by_tick_bid_ask(4, 1772463600, 233.11, 233.12, 100.0, 200.0),
    R.tick_by_tick_last(4, 1, 1772463600, 233.12, 100.0, "NASDAQ"),
    R.tick_by_tick_mid(4, 1772463600, 233.115),
    R.sec_def_opt_params(5, "SMART", 265598, "AAPL", "100", ["20261218"], [230.0]),
    R.sec_def_opt_params_end(5),
    R.symbol_samples(8, [(AAPL, ["OPT"], "APPLE INC")]),
    R.market_rule(26, [(0.0, 0.01)]),
    R.mkt_depth_exchanges([("NASDAQ", "STK", "", "Deep2", 1)]), R.user_info(9),
    [85, 1, "BRFG", "Briefing.com General Market Columns"],
    [19, 1, "<ScanParameterResponse/>"],
    D.scanner_data(7, [(0, AAPL, "NMS", "")]),
    R.account_update_multi(10, "DU0000001", "", "NetLiquidation", "1000000", "USD"),
    R.account_update_multi_end(10), R.current_time_in_millis(1772463600123)]


@pytest.mark.parametrize("fields", SMALL_PROTOBUF)
def test_protobuf_small_messages(fields):
    payload = PB.encode_reply(fields)[4:]
    rec = _Recorder()
    dec = _ibapi_decoder(204)
    dec.wrapper = rec
    dec.processProtoBuf(payload[4:], int.from_bytes(payload[:4], "big") - PB.MSG_ID_OFFSET)
    names = [m for m, _ in rec.calls]
    assert any(m.endswith("ProtoBuf") for m in names) and len(names) >= 1 + (int(fields[0]) != 17), names


def test_text_frames_at_201_carry_a_binary_message_id():
    frame = PB.encode_text(R.tick_price(3, 1, 233.12, 300.0), 204)
    assert frame[4:8] == struct.pack(">I", 1) and frame[8:].split(b"\0")[:2] == [b"6", b"3"]


def test_every_reply_has_a_protobuf_form():
    sent = {v for k, v in vars(P.Out).items() if not k.startswith("_")} | {19, 20, 83, 85, 86, 87}
    from trader.sim.protobuf_replies import _REPLY_FROM

    assert sent <= set(_REPLY_FROM), sent - set(_REPLY_FROM)


def test_protobuf_and_text_paths_reach_the_same_callbacks():
    """For every reply the gateway sends as protobuf, the official client's protobuf path and its text path (at
    200) call the same callbacks with the same values."""
    samples = [MESSAGES[n][0] for n in PROTOBUF_MESSAGES] + SMALL_PROTOBUF
    for fields in samples:
        text = _ibapi_decode(_wire_fields(fields, P.SERVER_VERSION), P.SERVER_VERSION)
        payload = PB.encode_reply(fields)[4:]
        rec = _Recorder()
        dec = _ibapi_decoder(PB.MAX_PROTOBUF_VERSION)
        dec.wrapper = rec
        dec.processProtoBuf(payload[4:], int.from_bytes(payload[:4], "big") - PB.MSG_ID_OFFSET)
        proto_calls = [(m, tuple(map(_plain, a))) for m, a in rec.calls if not m.endswith("ProtoBuf")]
        text_calls = [(m, tuple(map(_plain, a))) for m, a in text.calls]
        if [m for m, _ in proto_calls] == ["commissionAndFeesReport"]:  # ibapi's proto path: absent → 0.0, not
            proto_calls, text_calls = ([(m, _drop(a, {"realizedPNL", "yield_"})) for m, a in calls]  # UNSET
                                       for calls in (proto_calls, text_calls))
        assert proto_calls == text_calls, (fields[:3], proto_calls, text_calls)


# Order attributes the two decoders of the official client default differently when a value is absent (its text
# decoder: UNSET/None/False, its protobuf decoder: Order()'s 0/[]): nothing a server could send differently.
_DEFAULTS_DIFFER = {"displaySize", "usePriceMgmtAlgo", "smartComboRoutingParams", "routeMarketableToBbo"}


def _drop(args: tuple, names: set[str]) -> tuple:
    return tuple(tuple(kv for kv in a if kv[0] not in names) if isinstance(a, tuple) else a for a in args)


def _plain(value: object) -> object:
    """Comparable form of a callback argument (ibapi objects compare by their attributes)."""
    import enum

    if isinstance(value, enum.Enum):
        return str(value)
    if isinstance(value, list | tuple | set):
        return tuple(sorted(map(str, map(_plain, value))))
    if hasattr(value, "__dict__"):
        return tuple(sorted((k, str(_plain(v))) for k, v in vars(value).items() if k not in _DEFAULTS_DIFFER))
    if isinstance(value, float | int) and not isinstance(value, bool):
        return float(value)
    return value
