"""Broker reads shared within one batch of proposal checks (a bar close's ``propose_batch``).

Checking one proposal snapshots its contract ~5 times (sizing, price, the risk gate's preview, its context) and
reads the position groups for the what-if; a strategy's bar close proposes dozens at once, often several per
symbol. Inside `shared_reads()` each distinct read runs once and every check of the batch awaits the same
result, so all of a batch's proposals are judged on the same quote. Outside it nothing is shared: a single
`propose`, an order's own checks at submission and `mmr snapshot` always read afresh. The same goes for the
account, the positions and the working orders (`shared_now`: built from ib_async's state several times per
order's checks), so a batch's proposals are also judged on one account snapshot, one positions list and one
set of working orders.

Inside `streamed_quotes()` (a proposal's pricing: sizing and the risk gate's preview) a quote read may take a
ticker trader_service already streams instead of a snapshot request, when that ticker was updated within
``proposal_quote_max_age_seconds`` (trader.yaml); the broker adapter decides (`IBBroker.snapshot_contract`).
An order's own checks at submission stay outside it: they always request a snapshot.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

_SCOPE: ContextVar[dict[Hashable, asyncio.Future[Any]] | None] = ContextVar("mmr_shared_reads", default=None)
_VALUES: ContextVar[dict[Hashable, Any] | None] = ContextVar("mmr_shared_values", default=None)
_STREAMED: ContextVar[bool] = ContextVar("mmr_streamed_quotes", default=False)


@contextmanager
def shared_reads() -> Iterator[None]:
    """Share `shared` reads among this task and the tasks it starts (e.g. with ``asyncio.gather``) until exit."""
    token, values = _SCOPE.set({}), _VALUES.set({})
    try:
        yield
    finally:
        _VALUES.reset(values)
        _SCOPE.reset(token)


async def shared(key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
    """``await fetch()`` — once per ``key`` inside a `shared_reads` scope (the others await its result or its
    error), every time outside one."""
    scope = _SCOPE.get()
    if scope is None:
        return await fetch()
    task = scope.get(key)
    if task is None:
        task = scope[key] = asyncio.ensure_future(fetch())
    return await asyncio.shield(task)  # a cancelled waiter must not cancel the read the others wait for


def shared_now(key: Hashable, read: Callable[[], T]) -> T:
    """``read()`` (a synchronous read, e.g. the account from ib_async's state) — once per ``key`` inside a
    `shared_reads` scope (an error is not kept: the next caller reads again), every time outside one. The value
    is handed to every caller: only for immutable values (or callers that copy)."""
    values = _VALUES.get()
    if values is None:
        return read()
    if key not in values:
        values[key] = read()
    return values[key]


@contextmanager
def streamed_quotes() -> Iterator[None]:
    """Let quote reads in this task (and the tasks it starts) use a fresh streamed quote until exit."""
    token = _STREAMED.set(True)
    try:
        yield
    finally:
        _STREAMED.reset(token)


def streamed_quotes_allowed() -> bool:
    """True inside `streamed_quotes` (a proposal's pricing), False everywhere else."""
    return _STREAMED.get()
