"""Every module that registers wire types is in codec.WIRE_MODULES, and a fresh receiver decodes them
without importing anything first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from trader.messaging import codec

ROOT = Path(__file__).resolve().parents[2]


def test_every_module_with_wire_types_is_listed():
    found = set()
    for path in (ROOT / "trader").rglob("*.py"):
        if path.name == "codec.py":
            continue
        if "@wire" in path.read_text():
            found.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    assert found <= set(codec.WIRE_MODULES), f"add to WIRE_MODULES: {sorted(found - set(codec.WIRE_MODULES))}"


def test_fresh_process_decodes_a_project_type_without_importing_it():
    from datetime import UTC, datetime

    from trader.objects import ServiceStatus as S

    data = codec.packb(S("x", "1", 1, datetime.now(UTC), 0.0))
    code = ("import sys; from trader.messaging.codec import unpackb; "
            "v = unpackb(sys.stdin.buffer.read()); print(type(v).__name__, v.service)")
    out = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, timeout=30)
    assert out.stdout.decode().strip() == "ServiceStatus x", out.stderr.decode()
