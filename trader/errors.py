"""Project exceptions and the error table that carries them across process boundaries.

Domain code raises specific exceptions; the RPC layer turns any exception into a small dict
(`error_to_wire`) and back (`error_from_wire`):

- stdlib exception types (``ValueError``, ``KeyError``, ``TimeoutError`` …) come back as themselves;
- project exception types come back through the registered table below (every ``MMRError``
  subclass registers itself by name when it is defined);
- anything else comes back as ``RPCError`` carrying the remote type name, message and args.

This module is pure Python on purpose: no zmq, no msgpack, so domain code may import it.
"""

from __future__ import annotations

import builtins
from typing import Any

_ERROR_TABLE: dict[str, type[BaseException]] = {}


def register_error(cls: type[BaseException]) -> type[BaseException]:
    """Register an exception class so it is rebuilt as itself on the far side of an RPC call."""
    _ERROR_TABLE[cls.__name__] = cls
    return cls


class MMRError(Exception):
    """Base of every MMR exception. Subclasses register themselves in the error table."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register_error(cls)


class ConfigError(MMRError):
    """Configuration is missing or invalid; the message names the key and the file."""


class RPCError(MMRError):
    """A remote exception whose type is not known on this side of the wire."""

    def __init__(self, remote_type: str, message: str, remote_args: tuple | list = ()) -> None:
        super().__init__(f"{remote_type}: {message}")
        self.remote_type = remote_type
        self.remote_message = message
        self.remote_args = tuple(remote_args)


class RPCTimeout(MMRError, TimeoutError):
    """A service did not answer an RPC call in time (it is down, stuck or overloaded)."""


class ServiceUnavailable(MMRError):
    """A service cannot be reached."""


class EncodeError(MMRError, TypeError):
    """An object cannot be put on the wire (unknown type): raised at the sender."""


class DecodeError(MMRError, ValueError):
    """Bytes received from the wire are not a valid message."""


class MessageTooLarge(MMRError, ValueError):
    """A message is larger than the configured maximum."""


class StoreLockTimeout(MMRError, TimeoutError):
    """A store's inter-process lock could not be taken in time."""


class ServiceStarting(ServiceUnavailable):
    """The service is up but not ready yet (still starting): retry shortly. Nothing was done."""


class Busy(ServiceUnavailable):
    """This client already has the maximum number of requests in flight: retry later. Nothing was done."""


class Unauthenticated(MMRError, PermissionError):
    """The client presented no valid key (CURVE): the request was not read."""


class PortInUse(MMRError, OSError):
    """A service could not bind its port; the message names the port, the config key and what holds it."""


class DeadlineExceeded(MMRError, TimeoutError):
    """The caller's deadline passed before the work could start; nothing was sent to the broker."""


class OutcomeUnknown(MMRError):
    """The caller could not learn whether an order action happened; ``request_id`` looks it up.

    args: (message, request_id, lookup command).
    """

    def __init__(self, message: str, request_id: str = "", lookup: str = "") -> None:
        super().__init__(message, request_id, lookup)
        self.request_id = request_id
        self.lookup = lookup

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


register_error(MMRError)

_BUILTIN_EXCEPTIONS = {
    name: obj
    for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, BaseException)
}


def _wire_safe(value: Any) -> Any:
    """Keep exception args that msgpack can carry without help; stringify the rest."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, (list, tuple)):
        return [_wire_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _wire_safe(v) for k, v in value.items()}
    return repr(value)


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    """Describe an exception as a plain dict: type name, message and args."""
    if isinstance(exc, RPCError):
        return {"type": exc.remote_type, "message": exc.remote_message, "args": _wire_safe(exc.remote_args)}
    return {"type": type(exc).__name__, "message": str(exc), "args": _wire_safe(list(exc.args))}


def error_from_wire(err: dict[str, Any]) -> BaseException:
    """Rebuild an exception described by `error_to_wire`."""
    name = str(err.get("type", "Exception"))
    message = str(err.get("message", ""))
    args = err.get("args") or []
    cls = _ERROR_TABLE.get(name) or _BUILTIN_EXCEPTIONS.get(name)
    if cls is not None and cls is not RPCError:
        try:
            exc = cls(*args)
            if str(exc) != message and not args:
                exc = cls(message)
            return exc
        except Exception:  # constructor signature differs from args: fall back to the message
            try:
                return cls(message)
            except Exception:
                pass
    return RPCError(name, message, args)


# --------------------------------------------------------------------------- LLM pipeline (issue 6)
# Every exception here takes a message as its only positional argument so it crosses the wire as itself.


class InvalidProposal(MMRError, ValueError):
    """A proposal's fields are inconsistent (e.g. a limit order without a limit price)."""


class InvalidProposalTransition(MMRError):
    """A proposal cannot move from its current state to the requested one (terminal states are final)."""

    def __init__(self, message: str, *, proposal_id: Any = None, from_state: Any = None, to_state: Any = None):
        super().__init__(message)
        self.proposal_id = proposal_id
        self.from_state = from_state
        self.to_state = to_state


class ProposalNotFound(MMRError):
    """No proposal has the given id."""


class RoleForbidden(MMRError, PermissionError):
    """The caller's role (``MMR_ROLE``) may not run this command; unknown roles may run nothing."""


class ApproverKeyRequired(RoleForbidden):
    """Approving this proposal needs the approver key (its notional is above the configured threshold)."""


class InvalidGroup(MMRError, ValueError):
    """A position group's name, budget or symbols are invalid."""


class GroupNotFound(MMRError):
    """No position group has the given name."""


class GroupBudgetExceeded(MMRError):
    """A trade would push a position group over its budget and the group mode is ``reject``."""


# --------------------------------------------------------------------------- trading core (issue 5)


class InvalidOrder(MMRError, ValueError):
    """An order is structurally invalid; the message lists every problem found (one per line after the first)."""

    def __init__(self, message: str, problems: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems) or (message,)


class RiskRejected(MMRError):
    """The pre-trade risk gate refused an order; ``decision`` (a ``GateDecision``) lists every failed rule.

    Across the wire only the message survives (it names every failed rule with its numbers).
    """

    def __init__(self, message: str, decision: Any = None) -> None:
        super().__init__(message)
        self.decision = decision


# --------------------------------------------------------------------------- broker adapter (issue 5)
# Each __init__ accepts exactly the args it stores in ``self.args`` so ``error_from_wire`` rebuilds it as itself.


class ContractNotFound(MMRError, LookupError):
    """No contract matches the query (IB returned no contract details)."""


class AmbiguousContract(MMRError, LookupError):
    """Several contracts match the query; ``candidates`` (also ``args[1]``) lists them as contract dicts."""

    def __init__(self, message: str, candidates: list | tuple = ()) -> None:
        super().__init__(message, list(candidates))
        self.message = message
        self.candidates = list(candidates)

    def __str__(self) -> str:
        return self.message


class OrderNotFound(MMRError, LookupError):
    """No order with the given id is known to this client."""


class PositionNotFound(MMRError, LookupError):
    """No position matches the given symbol or row number."""


class OrderRejected(MMRError):
    """The broker refused an order: ``code`` is IB's error code (0 when none was given), ``message`` its text,
    ``leg`` names the bracket leg that failed ("entry", "take-profit", "stop-loss"; "" for a single order)."""

    def __init__(self, code: int, message: str, leg: str = "") -> None:
        super().__init__(code, message, leg)
        self.code = int(code)
        self.message = message
        self.leg = leg

    def __str__(self) -> str:
        where = f"{self.leg} leg " if self.leg else "order "
        return f"{where}rejected ({self.code}): {self.message}"


class HistoryDownloadError(MMRError):
    """A historical-data request failed for good (after the pacing retries), e.g. no permissions."""


class UniverseNotFound(MMRError, LookupError):
    """No universe of that name."""


class InvalidUniverse(MMRError, ValueError):
    """A universe name, symbol or CSV row is not acceptable (the message names the row)."""


class StrategyLoadError(MMRError, ValueError):
    """A strategy file cannot be loaded: outside strategies_directory, a symlink out, or no such class."""


class BacktestError(MMRError, ValueError):
    """A backtest cannot run as asked (no bars, bad parameters); the message says which input."""


# --------------------------------------------------------------------------- validation and deploy (issue 9)


class WalkForwardMismatch(BacktestError):
    """`backtests validate RUN --walk-forward-id WF`: the walk-forward tested another strategy, conIds, bar size
    or parameter set than the run; the message names every difference."""


class NotValidated(MMRError):
    """A run has no passing promotion checklist (`backtests validate ID`); the message names the failed checks.
    `strategies deploy --force` deploys it anyway."""


class AlreadyDeployed(MMRError, ValueError):
    """A strategy of that name is already in strategy_runtime.yaml; pick another `--name`."""


# --------------------------------------------------------------------------- sweeps (issue 9)


class SweepLocked(MMRError):
    """Another sweep holds the sweep lock (the message names the holder's pid); cron runs must not overlap."""


class SweepNotFound(MMRError, LookupError):
    """No sweep has the given id."""


class SweepFailed(MMRError):
    """A sweep ended other than "done" (failed or interrupted); the message names the sweep id to resume and
    the digest. `sweep run` / `bt-sweep` exit non-zero with it so cron notices."""


# --------------------------------------------------------------------------- the agent's CLI (issue 14)


class NotFound(MMRError, KeyError):
    """No stored item (backtest run, sweep, …) has the given id; the message names what was looked up.
    A KeyError too, so older callers that catch KeyError keep working."""

    def __str__(self) -> str:  # KeyError would print the repr of the message, quotes and all
        return str(self.args[0]) if self.args else ""


class InvalidName(MMRError, ValueError):
    """A name given on the command line (deploy name, …) is not acceptable; the message says the rule."""


class UnknownSymbol(MMRError, ValueError):
    """The broker cannot resolve a symbol being added to a group or universe; nothing was added."""


class UnknownEventKind(MMRError, ValueError):
    """``events --kind`` names a kind that is neither documented nor ever recorded; the message lists the known."""


# --------------------------------------------------------------------------- market discovery (issue 16)


class SourceUnavailable(MMRError):
    """A discovery source (IB snapshots/bars, the IB scanner, IB news, Massive.com) did not answer or refused;
    nothing was scanned. Never reported as an empty result: an empty list means "looked, found nothing"."""
