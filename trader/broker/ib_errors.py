"""IB error and message codes: what each one means and how seriously to take it.

TWS / IB Gateway send errors, warnings and plain notices through one callback (``error(reqId, code, msg)``), so
every code gets a severity here:

- ``advisory``: informational, nothing is wrong (data farm OK / inactive, delayed data shown instead);
- ``warning``: a request failed or needs attention, the connection and other orders are fine;
- ``connectivity``: the link between the gateway and IB (or to a data farm) changed — lost or restored;
- ``order_rejected``: an order was refused and will not work;
- ``terminal``: this connection cannot work without a person (client id in use, wrong port, outdated API).

Sources: IB's TWS API "Message Codes" / "Error Codes" pages. :func:`classify` returns an :class:`IBErrorInfo`
for any code; unknown codes are ``warning`` with the raw message, so nothing is silently dropped.
Pure Python (no ib_async import): the connection manager and the CLI both use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trader.messaging.codec import wire

__all__ = ["Severity", "IBErrorInfo", "IB_ERRORS", "SEVERITIES", "classify", "is_advisory", "error_to_dict"]

Severity = Literal["advisory", "warning", "connectivity", "order_rejected", "terminal"]
SEVERITIES: tuple[str, ...] = ("advisory", "warning", "connectivity", "order_rejected", "terminal")


@wire(name="broker.IBErrorInfo")
@dataclass(frozen=True, slots=True)
class IBErrorInfo:
    """One IB code: its name, how serious it is and what it means (``message`` is IB's text when known)."""

    code: int
    name: str
    severity: str
    meaning: str
    message: str = ""
    known: bool = True

    @property
    def advisory(self) -> bool:
        """True for informational notices that need no action."""
        return self.severity == "advisory"

    def to_dict(self) -> dict:
        """JSON-safe form (``status`` and error replies show it)."""
        return {"code": self.code, "name": self.name, "severity": self.severity, "meaning": self.meaning,
                "message": self.message, "known": self.known}


def _e(code: int, name: str, severity: Severity, meaning: str) -> tuple[int, IBErrorInfo]:
    return code, IBErrorInfo(code, name, severity, meaning)


IB_ERRORS: dict[int, IBErrorInfo] = dict(
    [
        # -- request / order errors (100-449)
        _e(100, "MAX_MESSAGE_RATE", "warning", "more than 50 messages per second were sent; slow down or TWS disconnects"),
        _e(101, "MAX_TICKERS", "warning", "the maximum number of simultaneous market data lines has been reached"),
        _e(102, "DUPLICATE_TICKER_ID", "warning", "a market data request reused a ticker id that is still active"),
        _e(103, "DUPLICATE_ORDER_ID", "order_rejected", "the order id was already used; the order was not placed"),
        _e(104, "MODIFY_FILLED_ORDER", "order_rejected", "a filled order cannot be modified"),
        _e(105, "MODIFY_MISMATCH", "order_rejected", "the modification does not match the original order"),
        _e(106, "CANT_TRANSMIT_ORDER", "order_rejected", "the order could not be transmitted"),
        _e(107, "INCOMPLETE_ORDER", "order_rejected", "an incomplete order cannot be transmitted"),
        _e(109, "PRICE_OUT_OF_RANGE", "order_rejected", "price outside the percentage band of the order defaults"),
        _e(110, "PRICE_INCREMENT", "order_rejected", "the price does not conform to the contract's minimum tick"),
        _e(135, "ORDER_NOT_FOUND", "warning", "no order with this id was found"),
        _e(136, "CANT_CANCEL", "warning", "this order cannot be cancelled"),
        _e(154, "HALTED", "order_rejected", "orders cannot be transmitted for a halted security"),
        _e(161, "NOT_CANCELLABLE", "warning", "cancel attempted while the order is not in a cancellable state"),
        _e(162, "HISTORICAL_DATA_ERROR", "warning", "historical data service error (no data, pacing violation, query cancelled)"),
        _e(165, "HISTORICAL_DATA_QUERY", "advisory", "historical data service query message (informational)"),
        _e(200, "NO_SECURITY_DEFINITION", "warning", "no security definition found for the contract (an order for it is rejected)"),
        _e(201, "ORDER_REJECTED", "order_rejected", "the order was rejected; IB's reason follows in the message"),
        _e(202, "ORDER_CANCELLED", "warning", "the order was cancelled (on request or by IB); the reason follows"),
        _e(203, "SECURITY_NOT_ALLOWED", "order_rejected", "the security is not available or not allowed for this account"),
        _e(321, "VALIDATION_ERROR", "warning", "the server could not validate the API request (bad parameters)"),
        _e(322, "PROCESSING_ERROR", "warning", "the server failed while processing the API request"),
        _e(326, "CLIENT_ID_IN_USE", "terminal", "the client id is already in use; connect with a unique client id"),
        _e(354, "MARKET_DATA_NOT_SUBSCRIBED", "warning", "requested market data is not subscribed for this account"),
        _e(366, "NO_HISTORICAL_QUERY", "warning", "no historical data query found for the ticker id (already finished or cancelled)"),
        _e(399, "ORDER_MESSAGE", "warning", "order message from IB, e.g. the order is held until the market opens"),
        _e(404, "SHORT_LOCATE", "warning", "shares are not available to short now; the order is held while IB locates them"),
        _e(411, "OUTSIDE_RTH_INVALID", "order_rejected", "the outside-regular-trading-hours flag is not valid for this order"),
        _e(434, "ZERO_SIZE", "order_rejected", "the order size cannot be zero"),
        _e(435, "NO_ACCOUNT", "order_rejected", "the order must specify an account"),
        # -- client-side (ibapi / ib_async) errors (500s)
        _e(501, "ALREADY_CONNECTED", "warning", "the client is already connected"),
        _e(502, "CONNECT_FAIL", "connectivity", "could not connect to TWS/Gateway: is the API enabled and the port right?"),
        _e(503, "UPDATE_TWS", "terminal", "this TWS/Gateway is too old for the API version and must be upgraded"),
        _e(504, "NOT_CONNECTED", "connectivity", "not connected to TWS/Gateway"),
        # -- system messages: connectivity between TWS/Gateway and IB's servers
        _e(1100, "CONNECTIVITY_LOST", "connectivity", "connectivity between IB and TWS/Gateway has been lost"),
        _e(1101, "CONNECTIVITY_RESTORED_DATA_LOST", "connectivity", "connectivity restored, market data lost: resubscribe"),
        _e(1102, "CONNECTIVITY_RESTORED", "connectivity", "connectivity restored, market data subscriptions maintained"),
        _e(1300, "SOCKET_PORT_RESET", "terminal", "the TWS socket port was changed; this connection is dropped: reconnect on the new port"),
        # -- warnings and farm notices (2100s)
        _e(2100, "ACCOUNT_DATA_UNSUBSCRIBED", "warning", "another account-data request replaced this client's subscription"),
        _e(2101, "ACCOUNT_SUBSCRIBE_CONFLICT", "warning", "cannot subscribe to the account: other clients use a different one"),
        _e(2102, "ORDER_STILL_PROCESSING", "warning", "the order cannot be modified while it is still being processed"),
        _e(2103, "MARKET_DATA_FARM_BROKEN", "connectivity", "a market data farm connection is broken"),
        _e(2104, "MARKET_DATA_FARM_OK", "advisory", "a market data farm connection is OK"),
        _e(2105, "HMDS_FARM_BROKEN", "connectivity", "a historical data farm connection is broken"),
        _e(2106, "HMDS_FARM_OK", "advisory", "a historical data farm connection is OK"),
        _e(2107, "HMDS_FARM_INACTIVE", "advisory", "historical data farm inactive but available on demand"),
        _e(2108, "MARKET_DATA_FARM_INACTIVE", "advisory", "market data farm inactive but available on demand"),
        _e(2109, "OUTSIDE_RTH_IGNORED", "warning", "the outside-RTH attribute was ignored for this order type/destination; the order was placed"),
        _e(2110, "TWS_SERVER_BROKEN", "connectivity", "connectivity between TWS/Gateway and IB's server is broken; it restores itself"),
        _e(2119, "MARKET_DATA_FARM_CONNECTING", "advisory", "a market data farm is connecting"),
        _e(2137, "CROSS_SIDE_WARNING", "warning", "the order flips the position from long to short or back"),
        _e(2157, "SECDEF_FARM_BROKEN", "connectivity", "the security definition farm connection is broken"),
        _e(2158, "SECDEF_FARM_OK", "advisory", "the security definition farm connection is OK"),
        _e(2174, "TIMEZONE_WARNING", "advisory", "a request's date/time had no explicit time zone; one was assumed"),
        # -- 10000s
        _e(10089, "MARKET_DATA_NEEDS_SUBSCRIPTION", "warning", "requested market data needs additional subscriptions (delayed data may follow)"),
        _e(10147, "CANCEL_ORDER_NOT_FOUND", "warning", "the order to cancel was not found"),
        _e(10148, "CANCEL_NOT_CANCELLABLE", "warning", "the order cannot be cancelled in its current state"),
        _e(10167, "DELAYED_DATA_SHOWN", "advisory", "no real-time subscription: delayed market data is shown instead"),
        _e(10168, "DELAYED_DATA_NOT_ENABLED", "warning", "no real-time subscription and delayed market data is not enabled"),
        _e(10197, "COMPETING_SESSION", "warning", "no market data: another live session of this user is using it"),
    ]
)


def classify(code: int, message: str = "") -> IBErrorInfo:
    """The table entry for ``code`` (with IB's ``message`` attached); unknown codes are ``warning``.

    IB also sends a few codes as negatives or with ``-1`` request ids; only the code matters here.
    """
    info = IB_ERRORS.get(int(code))
    if info is None:
        return IBErrorInfo(int(code), f"IB_{int(code)}", "warning", message or f"unknown IB code {code}",
                           message, known=False)
    return IBErrorInfo(info.code, info.name, info.severity, info.meaning, message, True) if message else info


def is_advisory(code: int) -> bool:
    """True for informational codes (farm OK/inactive, delayed data shown): log at most, never alarm."""
    return classify(code).severity == "advisory"


def error_to_dict(code: int, message: str = "", req_id: int | None = None) -> dict:
    """JSON form of one received IB error, classified (for ``status`` and event-store records)."""
    out = classify(code, message).to_dict()
    if req_id is not None:
        out["req_id"] = req_id
    return out
