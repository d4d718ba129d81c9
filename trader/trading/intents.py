"""Exactly-once order actions: every call that can place or cancel an order runs through `ExactlyOnce.run`.

The caller (the CLI makes one per invocation; ``--request-id`` supplies your own) names the action with a
request id. ``run``:

1. joins a call with the same id that is still running in this process (one answer for both);
2. records the intent durably (`IntentStore.claim`) *before* anything touches the broker — if the id is
   already recorded, answers with the recorded result or error and does nothing else;
3. runs the action (the executioner checks the caller's deadline again right before the broker call);
4. records the answer (a result, the error, ``expired``) in the order-records writer thread and answers.

A record left open by a crash is settled by reconciliation (`trader.trading.reconcile`) against the
broker's orders, matched by ``orderRef``; until then a retry gets ``OutcomeUnknown`` with the lookup command.

Orchestration only: the store comes in as blocking callables run in a worker, so this module imports no
duckdb and is driven by fakes in tests.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any, Protocol

from trader.errors import DeadlineExceeded, InvalidOrder, OutcomeUnknown, error_from_wire, error_to_wire

__all__ = ["ExactlyOnce", "IntentPort", "check_request_id", "check_deadline", "new_request_id", "lookup_command"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")


def new_request_id() -> str:
    """A fresh request id (what the CLI makes for each invocation)."""
    return "r-" + uuid.uuid4().hex[:20]


def check_request_id(request_id: Any) -> str:
    """The request id if well formed (1–64 of letters, digits, ``_.:-``), else ``InvalidOrder``."""
    if not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
        raise InvalidOrder(f"request id must be 1-64 letters, digits or _.:- (starting with a letter or digit), "
                           f"got {str(request_id)[:80]!r}")
    return request_id


def check_deadline(deadline: Any) -> None:
    """A deadline is None or epoch seconds within a day of now (a typo or a hostile value is refused)."""
    if deadline is None:
        return
    if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not math.isfinite(deadline) \
            or abs(deadline - time.time()) > 86_400:
        raise InvalidOrder(f"deadline must be epoch seconds within a day of now, got {str(deadline)[:40]!r}")


def lookup_command(request_id: str) -> str:
    """The command that shows what became of a request."""
    return f"mmr --json orders --request {request_id}"


class IntentPort(Protocol):
    """The blocking store calls `ExactlyOnce` needs (see `trader.data.order_records.IntentStore`)."""

    def claim(self, intent: Any) -> tuple[Any, bool]: ...

    def finish(self, request_id: str, state: str, *, result: Any = None, error: dict[str, Any] | None = None,
               order_ids: Any = (), only_open: bool = False) -> bool: ...


def _order_ids(result: Any) -> list[int]:
    if not isinstance(result, dict):
        return []
    ids = result.get("order_ids")
    if ids is None and isinstance(result.get("order"), dict):
        ids = result["order"].get("order_ids")
    return [int(i) for i in ids or () if isinstance(i, int)]


class ExactlyOnce:
    """Run order actions at most once per request id, with a durable record before the broker call."""

    def __init__(self, store: IntentPort, make_intent: Callable[..., Any], writer: Executor,
                 *, on_error: Callable[[str, BaseException], None] | None = None) -> None:
        """``make_intent(**fields)`` builds the store's intent value; ``writer`` is the single-thread executor
        that does every order-record write in order."""
        self.store = store
        self.make_intent = make_intent
        self.writer = writer
        self.on_error = on_error
        self._inflight: dict[str, asyncio.Future[Any]] = {}

    async def _blocking(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.writer, lambda: fn(*args, **kwargs))

    async def run(self, kind: str, request_id: str | None, action: Callable[[], Awaitable[Any]], *,
                  deadline: float | None = None, source: str = "", order_ref: str = "",
                  proposal_id: int | None = None, request: dict[str, Any] | None = None) -> Any:
        """Run ``action`` once for ``request_id`` (see module doc) and return its result (or raise its error).

        ``deadline`` is the caller's (epoch seconds): past it, nothing is started (``DeadlineExceeded``).
        """
        rid = check_request_id(request_id) if request_id is not None else new_request_id()
        check_deadline(deadline)
        running = self._inflight.get(rid)
        if running is not None:
            return await asyncio.shield(running)
        if deadline is not None and time.time() > deadline:
            raise DeadlineExceeded(f"request {rid} arrived after its deadline; nothing was done")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # never "exception never retrieved"
        self._inflight[rid] = fut
        keep_until_recorded = False
        try:
            intent = self.make_intent(
                request_id=rid, kind=kind, source=source, order_ref=order_ref or rid, proposal_id=proposal_id,
                deadline=datetime.fromtimestamp(deadline, UTC) if deadline is not None else None,
                request=request or {})
            row, created = await self._blocking(self.store.claim, intent)
            if not created:
                return self._answer_from(row)
            try:
                result = await action()
            except BaseException as exc:
                keep_until_recorded = self._record_error(rid, exc, fut)
                raise
            keep_until_recorded = True
            self._record(rid, "done", fut, result=result, order_ids=_order_ids(result))
            fut.set_result(result)
            return result
        except BaseException as exc:
            if not fut.done():
                fut.set_exception(exc if isinstance(exc, Exception) else OutcomeUnknown(
                    f"request {rid} was interrupted", rid, lookup_command(rid)))
            raise
        finally:
            if not keep_until_recorded:
                self._inflight.pop(rid, None)

    def _answer_from(self, row: Any) -> Any:
        if row.state == "done":
            return row.result
        if row.error is not None and row.state in ("refused", "expired"):
            raise error_from_wire(row.error)
        raise OutcomeUnknown(
            f"request {row.request_id} was received earlier and its outcome is not settled yet (the service "
            f"restarted while it ran; reconciliation with the broker settles it)", row.request_id,
            lookup_command(row.request_id))

    def _record_error(self, rid: str, exc: BaseException, fut: asyncio.Future[Any]) -> bool:
        """Record a failed action; True when the in-flight entry stays until the record is written."""
        if isinstance(exc, OutcomeUnknown) or not isinstance(exc, Exception):
            return False  # open: reconciliation settles it against the broker
        state = "expired" if isinstance(exc, DeadlineExceeded) else "refused"
        fut.set_exception(exc)
        self._record(rid, state, fut, error=error_to_wire(exc))
        return True

    def _record(self, rid: str, state: str, fut: asyncio.Future[Any], **fields: Any) -> None:
        """Write the answer in the writer thread; the in-flight entry answers retries until it is durable."""
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self.writer, lambda: self.store.finish(rid, state, **fields))

        def written(j: asyncio.Future[Any]) -> None:
            if self._inflight.get(rid) is fut:
                self._inflight.pop(rid, None)
            err = None if j.cancelled() else j.exception()
            if err is not None and self.on_error is not None:
                self.on_error(rid, err)

        job.add_done_callback(written)
