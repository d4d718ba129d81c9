"""Who may run which CLI command: ``MMR_ROLE`` = operator | proposer | approver (pure).

- ``operator`` (the default when ``MMR_ROLE`` is not set): every command.
- ``proposer`` (an agent): read commands, scans, research (``backtest``, ``bt-sweep``, ``sweep``,
  ``backtests …``), ``propose``, ``reject``, ``cancel``, ``close``, ``protect``, ``close-all-positions`` —
  never ``buy``/``sell``/``approve``/``resize``/``to-market``/``risk set``/``filter add``: it can reduce risk
  but not add it (or loosen the limits) without a person.
- ``approver`` (a person or a second agent): read commands, ``approve``, ``reject`` — no ``propose`` and no
  new positions of its own.
- any other value, including an empty one, refuses every command (fail closed).

Command names are those of ``mmr --json commands``; a command group's subcommand is written after a space
(``group create``). Aliases (``prisk``, ``psnap``, ``pdiff``) resolve to their command. A subcommand is allowed
when the role lists it or lists its whole group.

The services enforce the same roles on every RPC request (``RPC_METHOD_CLASSES`` below), by the CURVE key the
client connected with — the CLI check is only the friendly early answer.

Optionally, approving a proposal whose notional is above a threshold needs an approver key
(:func:`needs_approver_key`, :func:`check_approver_key`).
"""

from __future__ import annotations

import hmac
import math
import os
from collections.abc import Mapping
from enum import Enum

from trader.errors import ApproverKeyRequired, RoleForbidden
from trader.messaging.codec import wire

__all__ = [
    "Role",
    "ROLE_ENV",
    "DEFAULT_ROLE",
    "READ_COMMANDS",
    "RESEARCH_COMMANDS",
    "ROLE_COMMANDS",
    "ALIASES",
    "parse_role",
    "role_from_env",
    "normalize_command",
    "is_allowed",
    "check_allowed",
    "allowed_commands",
    "needs_approver_key",
    "check_approver_key",
    "RPC_METHOD_CLASSES",
    "RPC_CLASS_ROLES",
    "rpc_allowed",
    "check_rpc",
]

ROLE_ENV = "MMR_ROLE"


@wire(name="trading.Role")
class Role(str, Enum):
    OPERATOR = "operator"
    PROPOSER = "proposer"
    APPROVER = "approver"


DEFAULT_ROLE = Role.OPERATOR

ALIASES: Mapping[str, str] = {
    "prisk": "portfolio-risk",
    "psnap": "portfolio-snapshot",
    "pdiff": "portfolio-diff",
    "snapshot": "portfolio-snapshot",
}

# Commands that only look: safe for every known role.
READ_COMMANDS: frozenset[str] = frozenset({
    "status", "commands", "help", "version", "logs", "market-hours", "verify", "events",
    "listen", "watch",  # streams of ticks / the portfolio: read RPCs (subscribe_ticks, portfolio)
    "account", "portfolio", "positions", "orders", "trades", "executions",
    "proposals", "proposals show", "proposals list",
    "portfolio-snapshot", "portfolio-diff", "portfolio-risk", "session", "risk", "risk show", "filter",
    "filter show",
    "resolve", "quote", "quotes", "history", "bars", "chart", "chain", "futures roll",
    "options expirations", "options chain", "options snapshot", "options implied",
    "forex quote", "forex convert", "forex snapshot-all", "forex movers",
    "group list", "group show", "groups",
    "universe list", "universe show", "strategies list", "strategies show", "strategies inspect",
    "strategies deployed", "backtests", "sweep list", "sweep show",
    "strategies signals", "strategies pnl", "strategies fills",
    "nl parse", "nl eval",  # issue 18: parse + resolve + preview only; `nl --propose` is `nl propose` below
})

# Research: backtests and sweeps compute and store results but never touch the account. Deploying a
# strategy to the live runtime is not research: ``strategies deploy`` stays operator-only.
RESEARCH_COMMANDS: frozenset[str] = frozenset({"backtest", "bt-sweep", "sweep"})
# issue 20: research subcommands of groups whose head is a read command (or not listed): listed by name, so a
# read-only role (approver) cannot delete runs or write strategy files through the read group's head.
RESEARCH_SUBCOMMANDS: frozenset[str] = frozenset({"backtests compare", "backtests delete", "sweep overfit",
                                                  "strategies create", "strategies gauntlet",
                                                  "strategies generate"})
RESEARCH_COMMANDS = RESEARCH_COMMANDS | RESEARCH_SUBCOMMANDS

# Finding ideas: reads market data, changes nothing.
SCAN_COMMANDS: frozenset[str] = frozenset({"scan", "scanner", "ideas", "movers", "news", "depth"})

# Front ends that serve the commands above to another client (issue 21): ``mmr mcp`` lists only the tools its
# role may run, and each tool runs as that role with that role's key, so every role may start one.
FRONT_END_COMMANDS: frozenset[str] = frozenset({"mcp"})

ROLE_COMMANDS: Mapping[Role, frozenset[str]] = {
    # protect and close-all-positions only reduce risk (exits for what is held), like close.
    Role.PROPOSER: READ_COMMANDS | SCAN_COMMANDS | RESEARCH_COMMANDS | FRONT_END_COMMANDS
    | {"propose", "options propose", "nl propose", "reject", "cancel", "close", "protect", "close-all-positions"},
    # web: the dashboard approves and rejects with the approver key, so only an approver (or operator) starts it.
    Role.APPROVER: READ_COMMANDS | FRONT_END_COMMANDS | {"approve", "reject", "web"},
}

# Never allowed to the restricted roles even if a table edit lists them by mistake: they open risk directly.
_OPENING_COMMANDS = frozenset({"buy", "sell", "resize"})
# Subcommands of a read group that change the risk gate's limits: operator only, even though the group reads.
_OPERATOR_SUBCOMMANDS = frozenset({"options buy", "options sell", "options vertical", "options combo", "risk set",
                                   "filter add", "filter remove", "session set", "session reset"})


def parse_role(name: str | Role | None) -> Role | None:
    """The role called ``name`` (case-insensitive, surrounding spaces ignored), or None if unknown."""
    if isinstance(name, Role):
        return name
    if name is None:
        return None
    try:
        return Role(name.strip().lower())
    except ValueError:
        return None


def role_from_env(env: Mapping[str, str] | None = None) -> str:
    """The caller's role name: ``MMR_ROLE`` if set (even to something invalid), else ``operator``."""
    env = os.environ if env is None else env
    return env[ROLE_ENV] if ROLE_ENV in env else DEFAULT_ROLE.value


def normalize_command(command: str) -> str:
    """Lower-case, single spaces, aliases resolved: ``"  PRISK "`` → ``"portfolio-risk"``."""
    words = command.strip().lower().split()
    if not words:
        return ""
    words[0] = ALIASES.get(words[0], words[0])
    return " ".join(words[:2])


def _allowed(role: Role, command: str) -> bool:
    if role is Role.OPERATOR:
        return bool(command)
    table = ROLE_COMMANDS[role]
    head = command.split(" ", 1)[0]
    if head in _OPENING_COMMANDS or command in _OPERATOR_SUBCOMMANDS:
        return False
    if command in RESEARCH_SUBCOMMANDS:
        return command in table
    return command in table or head in table


def is_allowed(role_name: str | Role | None, command: str) -> bool:
    """True if ``role_name`` may run ``command``; unknown roles may run nothing."""
    role = parse_role(role_name)
    return role is not None and _allowed(role, normalize_command(command))


def check_allowed(role_name: str | Role | None, command: str) -> None:
    """Return None if allowed, else raise :class:`RoleForbidden` with a message naming role and command."""
    role = parse_role(role_name)
    cmd = normalize_command(command)
    if role is None:
        raise RoleForbidden(
            f"unknown role {role_name!r} ({ROLE_ENV}): every command is refused; "
            f"use one of {', '.join(r.value for r in Role)}"
        )
    if not _allowed(role, cmd):
        hint = ""
        if role is Role.PROPOSER and cmd.split(" ", 1)[0] in ("buy", "sell", "approve", "resize"):
            hint = "; use 'propose' and let an approver approve it"
        elif role is Role.APPROVER and cmd.split(" ", 1)[0] in ("propose", "buy", "sell", "resize"):
            hint = "; an approver only approves or rejects proposals"
        raise RoleForbidden(f"role '{role.value}' may not run '{cmd or command}'{hint}")


def allowed_commands(role_name: str | Role | None) -> frozenset[str] | None:
    """The commands a role may run; None for operator (everything), empty for an unknown role."""
    role = parse_role(role_name)
    if role is None:
        return frozenset()
    if role is Role.OPERATOR:
        return None
    return frozenset(c for c in ROLE_COMMANDS[role] if c.split(" ", 1)[0] not in _OPENING_COMMANDS)


def needs_approver_key(notional: float | None, threshold: float | None) -> bool:
    """True when approving a trade of ``notional`` (absolute value; unknown counts as large) needs the key.

    ``threshold`` None or ≤ 0 disables the requirement.
    """
    if threshold is None or threshold <= 0:
        return False
    if notional is None or not math.isfinite(notional):
        return True  # fail closed: an unsized trade cannot prove it is small
    return abs(notional) > threshold


def check_approver_key(provided: str | None, expected: str | None) -> None:
    """Raise :class:`ApproverKeyRequired` unless ``provided`` equals the configured key (constant-time).

    A missing configured key refuses too: a threshold without a key must not approve silently.
    """
    if not expected:
        raise ApproverKeyRequired("an approver key is required for this proposal but none is configured")
    if not provided or not hmac.compare_digest(provided.encode(), expected.encode()):
        raise ApproverKeyRequired("this proposal is above the approval threshold: a valid approver key is needed")


# --------------------------------------------------------------------------- RPC methods (enforced by services)
# The services check every request against this table, with the role of the CURVE key the client connected with
# (see trader/messaging/auth.py). It follows the CLI table above. Fail closed: a method not listed for a role is
# refused; a method not listed at all is operator-only. tests/trading/test_rpc_roles.py fails when a service has an
# @rpcmethod missing from RPC_METHOD_CLASSES, so a new method is classified on purpose, never open by accident.

SERVICES_ROLE = "services"  # the key services use to call each other: every method

# Per service, each @rpcmethod's class.
RPC_METHOD_CLASSES: Mapping[str, Mapping[str, str]] = {
    "trader_service": {
        "ping": "read", "status": "read", "broker_time": "read",  # the strategy runtime's feed clock
        "proposals": "read", "proposal": "read", "portfolio_risk": "read", "portfolio_snapshot": "read",
        "portfolio_diff": "read", "session_summary": "read", "resolve": "read", "snapshot": "read",
        "positions": "read", "portfolio": "read", "orders": "read", "trades": "read", "events": "read",
        "subscribe_ticks": "read", "unsubscribe_ticks": "read", "order_intent": "read", "risk_limits": "read",
        "snapshot_batch": "read", "ideas": "read", "scan": "read", "scan_params": "read", "movers": "read", "news": "read",  # discovery
        "depth": "read",
        "option_expirations": "read", "option_chain": "read", "fx_quotes": "read", "fx_convert": "read",
        "option_snapshot": "read", "option_implied": "read",
        "groups": "groups",  # read for list/show, operator for the rest (see _GROUP_READ_ACTIONS)
        "propose": "propose", "propose_batch": "propose",  # propose_batch: a strategy's signals of one bar
        "propose_preview": "read",  # propose's checks and what-if, storing nothing (mmr nl TEXT)
        "reject_proposal": "reject",
        "approve_proposal": "approve",
        "cancel_order": "reduce", "close_position": "reduce",
        "protect_position": "reduce", "close_all_positions": "reduce",
        "place_order": "operator", "cancel_all": "operator", "resize_positions": "operator",
        # to-market can make an opening order marketable now; risk settings change the gate itself
        "order_to_market": "operator", "reconcile_now": "operator", "risk_set": "operator", "filter_edit": "operator",
        "session_set": "operator", "session_reset": "operator",
    },
    "data_service": {
        "ping": "read", "status": "read",
        "history_job": "read", "history_list": "read", "history_read": "read", "history_gaps": "read",
        "universe_list": "read", "universe_show": "read",
        # Downloading bars is research: it fills the local store and never touches the account.
        "history_start": "research", "history_download": "research", "history_update": "research",
        "history_massive": "research",
        "universe_create": "operator", "universe_add": "operator", "universe_import": "operator",
        "universe_remove": "operator", "universe_delete": "operator",
    },
    "strategy_service": {
        "ping": "read", "status": "read",
        "strategies": "read", "strategy_signals": "read", "strategy_bars": "read", "strategy_pnl": "read",
        "strategy_fills": "read",
        "strategy_reload": "operator", "strategy_resubscribe": "operator",
    },
}

# Which roles each class admits (operator and the services key admit every class).
RPC_CLASS_ROLES: Mapping[str, frozenset[Role]] = {
    "read": frozenset({Role.PROPOSER, Role.APPROVER}),
    "research": frozenset({Role.PROPOSER}),
    "propose": frozenset({Role.PROPOSER}),
    "reject": frozenset({Role.PROPOSER, Role.APPROVER}),
    "approve": frozenset({Role.APPROVER}),
    "reduce": frozenset({Role.PROPOSER}),  # cancel an order, close a position: reduces risk
    "groups": frozenset({Role.PROPOSER, Role.APPROVER}),
    "operator": frozenset(),
}

_GROUP_READ_ACTIONS = frozenset({"list", "show"})
# Never open to a restricted role, whatever the tables above say: these open or add risk without a person.
_OPENING_METHODS = frozenset({"place_order", "approve_proposal", "resize_positions"})
_APPROVER_ONLY = frozenset({"approve_proposal"})


def rpc_allowed(service: str, role_name: str | Role | None, method: str, args: tuple | list = (),
                kwargs: Mapping[str, object] | None = None) -> bool:
    """True if a client with ``role_name``'s key may call ``service``'s RPC ``method`` with these arguments."""
    if role_name == SERVICES_ROLE:
        return True
    role = parse_role(role_name)
    if role is None:
        return False
    if role is Role.OPERATOR:
        return True
    klass = RPC_METHOD_CLASSES.get(service, {}).get(method, "operator")
    if role not in RPC_CLASS_ROLES.get(klass, frozenset()):
        return False
    if method in _OPENING_METHODS and not (role is Role.APPROVER and method in _APPROVER_ONLY):
        return False
    if klass == "groups":
        action = args[0] if args else (kwargs or {}).get("action", "list")
        return action in _GROUP_READ_ACTIONS
    return True


def check_rpc(service: str, role_name: str | Role | None, method: str, args: tuple | list = (),
              kwargs: Mapping[str, object] | None = None) -> None:
    """Raise :class:`RoleForbidden` (naming role, service and method) unless :func:`rpc_allowed`."""
    if not rpc_allowed(service, role_name, method, args, kwargs):
        name = role_name.value if isinstance(role_name, Role) else role_name
        raise RoleForbidden(f"role '{name}' may not call {service}.{method}; nothing was done")
