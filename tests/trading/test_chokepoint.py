"""One chokepoint per danger: orders reach the broker only through ``Executioner.submit``.

A structural check over the syntax tree of every product module of ``trader/`` — all but the simulated
exchange (``trader/sim/``) and the test harnesses (``trader/testing*.py``, whose crash harness places a
"foreign" order as another client of the exchange on purpose; no product module may import them): each way of
reaching a placing call is allowed in exactly one layer —

- ib_async's order calls (``placeOrder``, ``cancelOrder``, ``reqGlobalCancel``, ``exerciseOptions``) only in
  the placement adapter, ``trader/broker/placement.py``;
- the placer (``OrderPlacer``, a ``.placer``, ``.place_bracket``) only in ``trader/broker/adapter.py``, whose
  ``IBBroker`` is the executioner's ``BrokerPort``;
- a ``.place`` (the port's placing call, or the placer's inside the adapter) only in
  ``trader/trading/executioner.py`` and the adapter;
- and on the import graph: only the adapter imports ``trader.broker.placement``.

A "reference" is any attribute access (``self._broker.place``, an alias ``p = broker.place``), any name or
import of those names, any string naming them (``getattr(x, "placeOrder")``, ``methodcaller("place", …)``,
``importlib.import_module("trader.broker.placement")``) — not only a call written on one line. So no RPC
method, CLI command, proposal approval or strategy can send (or cancel) an order around the risk gate, and
`test_the_checker_flags_every_evasion` shows each evasion form is caught.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PLACEMENT = "trader/broker/placement.py"
ADAPTER = "trader/broker/adapter.py"
EXECUTIONER = "trader/trading/executioner.py"
PLACEMENT_MODULE = "trader.broker.placement"

# Each placing name and the modules that may refer to it (the defining module may refer to its own names).
ALLOWED: dict[str, frozenset[str]] = {
    # ib_async: the calls that send or cancel orders at the broker
    "placeOrder": frozenset({PLACEMENT}),
    "cancelOrder": frozenset({PLACEMENT}),
    "reqGlobalCancel": frozenset({PLACEMENT}),
    "exerciseOptions": frozenset({PLACEMENT}),
    # the placement adapter's object and its placing methods
    "OrderPlacer": frozenset({PLACEMENT, ADAPTER}),
    "placer": frozenset({ADAPTER}),
    "place_bracket": frozenset({PLACEMENT, ADAPTER}),
    # BrokerPort.place (and OrderPlacer.place inside the adapter)
    "place": frozenset({EXECUTIONER, ADAPTER, PLACEMENT}),
    # the module itself, named as a string (importlib.import_module, __import__)
    PLACEMENT_MODULE: frozenset({ADAPTER}),
}
# Distinctive names are flagged wherever they appear as a string; "place" is an ordinary word (an intent's
# kind is "place"), so as a string it counts only where a string names an attribute: getattr & co, a key.
_GENERIC = frozenset({"place"})
_DYNAMIC_ATTRIBUTE_CALLS = frozenset({"getattr", "hasattr", "setattr", "delattr", "methodcaller", "attrgetter",
                                      "__getattribute__", "__getattr__", "import_module", "__import__"})


def _module_name(rel: str) -> str:
    return rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def _imported_module(node: ast.ImportFrom, rel: str) -> str:
    """The absolute module a ``from … import`` reads from (relative imports resolved against ``rel``)."""
    if not node.level:
        return node.module or ""
    package = _module_name(rel).split(".")
    if not rel.endswith("__init__.py"):
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _callee_name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def references(rel: str, source: str) -> list[tuple[str, int, str]]:
    """Every reference to a placing name in one module: (name, line, how)."""
    tree = ast.parse(source, filename=rel)
    found: list[tuple[str, int, str]] = []
    dynamic: set[int] = set()  # ids of string constants used as attribute names or keys
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _callee_name(node) in _DYNAMIC_ATTRIBUTE_CALLS:
            dynamic.update(id(a) for a in [*node.args, *(k.value for k in node.keywords)])
        elif isinstance(node, ast.Subscript):
            dynamic.add(id(node.slice))
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute) and node.attr in ALLOWED:
            found.append((node.attr, line, "attribute"))
        elif isinstance(node, ast.Name) and node.id in ALLOWED:
            found.append((node.id, line, "name"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in ALLOWED:
            if node.value not in _GENERIC or id(node) in dynamic:
                found.append((node.value, line, "string"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PLACEMENT_MODULE or alias.name.startswith(PLACEMENT_MODULE + "."):
                    found.append((PLACEMENT_MODULE, line, "import"))
        elif isinstance(node, ast.ImportFrom):
            module = _imported_module(node, rel)
            for alias in node.names:
                if module == PLACEMENT_MODULE or f"{module}.{alias.name}" == PLACEMENT_MODULE:
                    found.append((PLACEMENT_MODULE, line, "import"))
                if alias.name in ALLOWED:
                    found.append((alias.name, line, "import"))
    return found


def outside_allowed(refs: dict[str, list[tuple[str, int, str]]]) -> list[str]:
    """References to a placing name outside the modules allowed to make them, as "path:line name (how)"."""
    return sorted(f"{rel}:{line} {name} ({how})" for rel, found in refs.items()
                  for name, line, how in found if rel not in ALLOWED[name])


def violations(modules: dict[str, str]) -> list[str]:
    """`outside_allowed` for sources given as {path: source}."""
    return outside_allowed({rel: references(rel, source) for rel, source in modules.items()})


# Not product code: the simulated exchange itself, and the test harnesses that act as other clients of it.
NOT_PRODUCT = ("trader/sim/", "trader/testing")


@functools.cache
def trader_modules() -> dict[str, str]:
    """Source of every product module of trader/, by path relative to the repo."""
    out = {}
    for path in sorted((ROOT / "trader").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if not rel.startswith(NOT_PRODUCT):
            out[rel] = path.read_text()
    return out


def imported_modules(rel: str, source: str) -> set[str]:
    """Every module one module imports (``from a import b`` counts as ``a`` and ``a.b``)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=rel)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _imported_module(node, rel)
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
    return out


@functools.cache
def tree_references() -> dict[str, list[tuple[str, int, str]]]:
    return {rel: references(rel, source) for rel, source in trader_modules().items()}


def test_only_one_path_reaches_the_broker():
    assert outside_allowed(tree_references()) == []
    # The walk is not vacuous: it sees the allowed references it exists to confine.
    seen = {(rel, name) for rel, refs in tree_references().items() for name, _, _ in refs}
    assert {(PLACEMENT, "placeOrder"), (PLACEMENT, "cancelOrder"), (PLACEMENT, "reqGlobalCancel"),
            (ADAPTER, "OrderPlacer"), (ADAPTER, "placer"), (ADAPTER, PLACEMENT_MODULE),
            (EXECUTIONER, "place")} <= seen


def test_only_the_adapter_imports_the_placement_module():
    importers = {rel for rel, refs in tree_references().items()
                 for name, _, how in refs if name == PLACEMENT_MODULE and how == "import"}
    assert importers == {ADAPTER}


def test_no_product_module_imports_the_test_harnesses():
    offenders = sorted(f"{rel}: {m}" for rel, src in trader_modules().items() for m in imported_modules(rel, src)
                       if m.startswith("trader.testing"))
    assert offenders == []
    assert imported_modules("trader/x.py", "from trader import testing_crash") >= {"trader.testing_crash"}


# Offending sources, each planted in a module that must not reach the broker; every one must be flagged.
EVASIONS = {
    "attribute on another name": ("trader/order_handlers.py", "async def f(self):\n"
                                  "    await self._broker.place(c, r, 1)\n"),
    "alias assignment": ("trader/cli/trading.py", "def f(broker):\n    p = broker.place\n    return p(c, r, 1)\n"),
    "getattr string": ("trader/trader_service.py", "def f(b):\n    return getattr(b, 'place')(c, r, 1)\n"),
    "getattr keyword-free via hasattr": ("trader/mcp/tools.py", "def f(b):\n    return hasattr(b, 'place')\n"),
    "operator.methodcaller": ("trader/strategy/runtime.py",
                              "import operator\nsend = operator.methodcaller('place', c, r, 1)\n"),
    "from-imported methodcaller": ("trader/strategy/runtime.py",
                                   "from operator import methodcaller\nsend = methodcaller('place', c, r, 1)\n"),
    "attrgetter on ib": ("trader/broker/connection.py",
                         "from operator import attrgetter\nsend = attrgetter('placeOrder')\n"),
    "placeOrder through the session": ("trader/broker/connection.py",
                                       "def f(self):\n    self.ib.placeOrder(contract, order)\n"),
    "placeOrder from the executioner": (EXECUTIONER, "def f(self):\n    self.broker.ib.placeOrder(c, o)\n"),
    "placeOrder from the adapter": (ADAPTER, "def f(self):\n    self.ib.placeOrder(c, o)\n"),
    "placeOrder as any string": ("trader/web/app.py", "NAME = 'placeOrder'\n"),
    "cancelOrder": ("trader/order_handlers.py", "def f(self, t):\n    self.broker.ib.cancelOrder(t.order)\n"),
    "reqGlobalCancel": ("trader/trader_service.py", "def f(ib):\n    ib.reqGlobalCancel()\n"),
    "reaching through the adapter's placer": (EXECUTIONER, "async def f(self):\n"
                                              "    await self.broker.placer.place_bracket(c, r, 1)\n"),
    "place_bracket on the port": ("trader/order_handlers.py", "async def f(b):\n    await b.place_bracket(c, r, 1)\n"),
    "dict key": ("trader/cli/trading.py", "def f(b):\n    return type(b).__dict__['place'](b, c, r, 1)\n"),
    "from-import of the placer": ("trader/order_handlers.py", "from trader.broker.placement import OrderPlacer\n"),
    "from-import of the module": ("trader/trader_service.py", "from trader.broker import placement\n"),
    "import of the module": ("trader/trader_service.py", "import trader.broker.placement as p\n"),
    "star import": ("trader/trader_service.py", "from trader.broker.placement import *\n"),
    "relative import": ("trader/broker/connection.py", "from .placement import OrderPlacer as P\n"),
    "relative import of the module": ("trader/broker/contracts.py", "from . import placement\n"),
    "import from the executioner": (EXECUTIONER, "from trader.broker.placement import OrderPlacer\n"),
    "import_module": ("trader/cli/trading.py",
                      "import importlib\nm = importlib.import_module('trader.broker.placement')\n"),
    "__import__": ("trader/cli/trading.py", "m = __import__('trader.broker.placement')\n"),
    "from-import of a placing method": ("trader/cli/trading.py", "from trader.broker.adapter import place\n"),
}


@pytest.mark.parametrize("form", list(EVASIONS))
def test_the_checker_flags_every_evasion(form):
    rel, source = EVASIONS[form]
    flagged = violations({rel: source})
    assert flagged and all(v.startswith(rel + ":") for v in flagged), (form, flagged)


def test_the_checker_leaves_ordinary_code_alone():
    ordinary = {
        "trader/order_handlers.py": "async def f(self, rid):\n"
                                    "    return await self._once('place', rid, lambda: None)\n",  # a label
        "trader/data_service.py": "def f(task):\n    task.cancel()\n",
        "trader/cli/trading.py": "placement_note = 'where the order was placed'\n",
        EXECUTIONER: "async def f(self):\n    return await self.broker.place(c, r, 1)\n",
        ADAPTER: "from trader.broker.placement import OrderPlacer\n"
                 "async def f(self):\n    return await self.placer.place(c, r, 1)\n",
        PLACEMENT: "def f(self):\n    return self.ib.placeOrder(c, o)\n",
    }
    assert violations(ordinary) == []
