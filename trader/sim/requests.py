"""TWS request parsers for the messages the simulator decodes beyond a simple FieldReader walk.

Each parser mirrors the layout ib_async's ``client.py`` writes at SERVER_VERSION (trader/sim/protocol.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from trader.sim.protocol import SERVER_VERSION, UNSET_DOUBLE, ContractSpec, FieldReader


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """The parts of a placeOrder message the simulator acts on (the rest is parsed and dropped)."""

    order_id: int
    contract: ContractSpec
    action: str
    total_quantity: float
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    oca_group: str
    account: str
    order_ref: str
    transmit: bool
    parent_id: int
    outside_rth: bool
    oca_type: int
    trail_stop_price: float | None
    trailing_percent: float | None
    what_if: bool
    lmt_price_offset: float | None
    unsupported: str = ""  # non-empty: why the simulator must reject this order (conditions …)
    extra: dict = field(default_factory=dict)
    combo_legs: tuple[tuple[int, int, str, str], ...] = ()  # BAG: (conId, ratio, action, exchange) per leg


def parse_place_order(fields: Sequence[str], server_version: int = SERVER_VERSION) -> OrderSpec:
    """Parse a placeOrder (id 3) message laid out as ib_async's ``Client.placeOrder`` writes it."""
    r = FieldReader(fields, 1)
    order_id = r.int()
    contract = r.contract()
    r.skip(2)  # secIdType, secId
    action, qty, order_type = r.str(), r.float() or 0.0, r.str()
    lmt, aux, tif, oca_group, account = r.float(), r.float(), r.str(), r.str(), r.str()
    r.skip(2)  # openClose, origin
    order_ref, transmit, parent_id = r.str(), r.bool(), r.int()
    r.skip(3)  # blockOrder, sweepToFill, displaySize
    r.skip(1)  # triggerMethod
    outside_rth = r.bool()
    r.skip(1)  # hidden
    unsupported = ""
    combo_legs: list[tuple[int, int, str, str]] = []
    if contract.sec_type == "BAG":
        for _ in range(r.int()):
            con_id, ratio, leg_action, leg_exchange = r.int(), r.int(), r.str().upper(), r.str()
            r.skip(4)  # openClose, shortSaleSlot, designatedLocation, exemptCode
            combo_legs.append((con_id, ratio, leg_action, leg_exchange))
        if r.int():  # per-leg prices (orderComboLegs)
            unsupported = "per-leg combo prices are not supported in the simulator (give one net price)"
            return _rejected_spec(order_id, contract, order_ref, unsupported)
        r.skip(2 * r.int())  # smartComboRoutingParams
    r.skip(1)  # deprecated sharesAllocation
    r.skip(6)  # discretionaryAmt, goodAfterTime, goodTillDate, faGroup, faMethod, faPercentage
    if server_version < 177:
        r.skip(1)  # faProfile
    r.skip(4)  # modelCode, shortSaleSlot, designatedLocation, exemptCode
    oca_type = r.int()
    r.skip(15)  # rule80A … overridePercentageConstraints (see client.py)
    r.skip(2)  # volatility, volatilityType
    dn_order_type = r.str()
    r.skip(1)  # deltaNeutralAuxPrice
    if dn_order_type:
        r.skip(8)
    r.skip(2)  # continuousUpdate, referencePriceType
    trail_stop_price, trailing_percent = r.float(), r.float()
    r.skip(2)  # scaleInitLevelSize, scaleSubsLevelSize
    scale_inc = r.float()
    if scale_inc is not None and 0 < scale_inc < UNSET_DOUBLE:
        r.skip(7)
    r.skip(3)  # scaleTable, activeStartTime, activeStopTime
    if r.str():  # hedgeType
        r.skip(1)
    r.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    if r.bool():  # delta-neutral contract
        r.skip(3)
    algo = r.str()
    if algo:
        r.skip(2 * r.int())
    r.skip(1)  # algoId
    what_if = r.bool()
    r.skip(4)  # orderMiscOptions, solicited, randomizeSize, randomizePrice
    if order_type in ("PEG BENCH", "PEGBENCH"):
        r.skip(5)
    n_conditions = r.int()
    lmt_price_offset = None
    if n_conditions:
        # condition layouts vary per type; we reject rather than guess, so stop parsing here
        unsupported = unsupported or "order conditions are not supported in the simulator"
    else:
        r.skip(2)  # adjustedOrderType, triggerPrice
        lmt_price_offset = r.float()
    return OrderSpec(
        order_id=order_id,
        contract=contract,
        action=action.upper(),
        total_quantity=qty,
        order_type=order_type.upper(),
        lmt_price=lmt,
        aux_price=aux,
        tif=tif or "DAY",
        oca_group=oca_group,
        account=account,
        order_ref=order_ref,
        transmit=transmit,
        parent_id=parent_id,
        outside_rth=outside_rth,
        oca_type=oca_type,
        trail_stop_price=trail_stop_price,
        trailing_percent=trailing_percent,
        what_if=what_if,
        lmt_price_offset=lmt_price_offset,
        unsupported=unsupported,
        extra={"algo": algo} if algo else {},
        combo_legs=tuple(combo_legs),
    )


def _rejected_spec(order_id: int, contract: ContractSpec, order_ref: str, why: str) -> OrderSpec:
    return OrderSpec(order_id, contract, "", 0.0, "", None, None, "DAY", "", "", order_ref, True, 0, False, 0,
                     None, None, False, None, unsupported=why)
