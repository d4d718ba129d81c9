"""``mmr web`` (issue 21) against one simulated platform: the real process, a real HTTP client and a real
headless Chromium (Debian's ``chromium``, driven by Playwright; ``scripts/ensure_browser.sh`` installs it).

Without the browser the browser test FAILS (never skips): CI must install it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from trader.testing import cli_ok, eventually, running_platform

CHROMIUM = os.environ.get("MMR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def plat(tmp_path_factory):
    with running_platform(tmp_path_factory.mktemp("web"), with_gateway=True, broker_ready=True) as p:
        cli_ok(p, "buy", "AAPL", "--quantity", "10")
        yield p


@pytest.fixture(scope="module")
def web(plat):
    """``mmr --json web --port 0`` running: (base URL, login token, the process)."""
    log = plat.home / "web.stderr"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "trader.mmr_cli", "--json", "web", "--port", "0"],
                                env=plat.env, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        line = proc.stdout.readline()
        assert line, f"mmr web printed nothing: {log.read_text()[-2000:]}"
        doc = json.loads(line)
        base = f"http://127.0.0.1:{doc['port']}"
        assert doc["url"] == f"{base}/?token={doc['token']}" and len(doc["token"]) >= 24
        assert eventually(lambda: _answers(base), timeout=30), f"mmr web does not answer: {log.read_text()[-2000:]}"
        yield base, doc["token"], proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _answers(base: str) -> bool:
    try:
        return httpx.get(base + "/", timeout=2).status_code == 401
    except httpx.TransportError:
        return False


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _proposal(plat, symbol: str) -> int:
    return cli_ok(plat, "propose", symbol, "BUY", "--quantity", "2", "--reasoning", "web test")["id"]


def _events(plat, kind: str) -> list[dict[str, Any]]:
    return cli_ok(plat, "events", "--kind", kind, "--limit", "20")


def test_every_request_needs_the_token_and_writes_need_csrf(plat, web):
    base, token, _ = web
    assert httpx.get(f"{base}/").status_code == 401
    assert httpx.get(f"{base}/partial/account").status_code == 401
    assert httpx.get(f"{base}/?token=wrong").status_code == 401
    assert httpx.get(f"{base}/partial/account", cookies={"mmr_web": "wrong"}).status_code == 401
    pid = _proposal(plat, "NVDA")
    no_token = httpx.post(f"{base}/proposals/{pid}/approve", json={"request_id": "web-x"})
    assert no_token.status_code == 401
    no_csrf = httpx.post(f"{base}/proposals/{pid}/approve", json={"request_id": "web-x"}, headers=_bearer(token))
    assert no_csrf.status_code == 403 and no_csrf.json()["error"]["type"] == "CSRFRefused"
    bad_csrf = httpx.post(f"{base}/proposals/{pid}/reject", json={"reason": "x"},
                          headers={**_bearer(token), "X-CSRF-Token": "0" * 64})
    assert bad_csrf.status_code == 403
    assert cli_ok(plat, "proposals", "show", str(pid))["state"] == "PENDING"
    # another Host (DNS rebinding) is refused even with the token
    assert httpx.get(f"{base}/partial/account", headers={**_bearer(token), "Host": "evil.example"}).status_code == 400
    ok = httpx.get(f"{base}/partial/account", headers=_bearer(token))
    assert ok.status_code == 200 and 'data-symbol="AAPL"' in ok.text
    login = httpx.get(f"{base}/?token={token}")  # sets the cookie and drops the token from the address
    assert login.status_code == 303 and login.headers["location"] == "/"
    assert "httponly" in login.headers["set-cookie"].lower() and "samesite=strict" in login.headers["set-cookie"].lower()


def test_a_bad_write_is_an_error_document_not_a_crash(plat, web):
    base, token, _ = web
    from trader.web.app import csrf_token

    headers = {**_bearer(token), "X-CSRF-Token": csrf_token(token)}
    missing = httpx.post(f"{base}/proposals/987654/approve", json={"request_id": "web-987654-x"}, headers=headers)
    assert missing.status_code == 409 and missing.json()["error"]["type"] == "ProposalNotFound"
    no_reason = httpx.post(f"{base}/proposals/987654/reject", json={"reason": " "}, headers=headers)
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["error"]["message"]
    not_json = httpx.post(f"{base}/proposals/1/reject", content=b"[1", headers=headers)
    assert not_json.status_code == 400
    assert httpx.get(f"{base}/partial/account", headers=_bearer(token)).status_code == 200  # still serving


def _chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"headless Chromium not found at {CHROMIUM}: the dashboard's browser test needs it. Install it "
                    f"with scripts/ensure_browser.sh (apt-get install chromium; run_tests.sh does this as root) or "
                    f"point MMR_CHROMIUM at a Chromium binary.")
    return CHROMIUM


def test_in_a_browser_positions_show_and_approve_and_reject_by_clicking(plat, web):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15000)  # two cores shared with other test files: pages may refresh slowly
    base, token, _ = web
    approve_id, reject_id = _proposal(plat, "MSFT"), _proposal(plat, "GOOGL")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{base}/?token={token}")
            assert page.url == f"{base}/"  # the token went into the cookie, out of the address bar
            expect(page.locator('#account tr[data-symbol="AAPL"]')).to_be_visible()
            expect(page.locator('#charts svg[data-symbol="AAPL"]')).to_be_visible()
            box = page.locator(f'[data-proposal="{approve_id}"]')
            expect(box).to_contain_text("risk preview")
            box.get_by_role("button", name=f"Approve #{approve_id}").click()
            executed = page.locator(f'#proposals tr[data-proposal-id="{approve_id}"]')
            expect(executed).to_have_attribute("data-state", "EXECUTED", timeout=30000)
            expect(page.locator('#account tr[data-symbol="MSFT"]')).to_be_visible(timeout=20000)

            other = page.locator(f'[data-proposal="{reject_id}"]')
            other.locator("input[name=reason]").fill("too late in the day")
            other.get_by_role("button", name="Reject").click()
            expect(page.locator(f'#proposals tr[data-proposal-id="{reject_id}"]')).to_have_attribute(
                "data-state", "REJECTED", timeout=20000)
            expect(page.locator('#events tr[data-kind="proposal_rejected"]').first).to_be_visible(timeout=20000)
        finally:
            browser.close()

    shown = cli_ok(plat, "proposals", "show", str(approve_id))
    assert shown["state"] == "EXECUTED" and shown["filled_quantity"] == 2
    approvals = [e for e in _events(plat, "proposal_approve_requested") if e["payload"]["id"] == approve_id]
    assert len(approvals) == 1 and approvals[0]["payload"]["request_id"].startswith(f"web-{approve_id}-")
    rejected = cli_ok(plat, "proposals", "show", str(reject_id))
    assert rejected["state"] == "REJECTED" and rejected["state_reason"] == "too late in the day (dashboard)"
    assert any(e["payload"]["id"] == reject_id for e in _events(plat, "proposal_rejected"))


def test_a_retried_approval_executes_once(plat, web):
    base, token, _ = web
    from trader.web.app import csrf_token

    pid = _proposal(plat, "AMZN")
    headers = {**_bearer(token), "X-CSRF-Token": csrf_token(token)}
    page = httpx.get(f"{base}/partial/proposals", headers=headers).text
    marker = f'data-proposal="{pid}"'
    rid = page.split(marker, 1)[1].split('data-request-id="', 1)[1].split('"', 1)[0]
    first = httpx.post(f"{base}/proposals/{pid}/approve", json={"request_id": rid}, headers=headers, timeout=30)
    again = httpx.post(f"{base}/proposals/{pid}/approve", json={"request_id": rid}, headers=headers, timeout=30)
    assert first.status_code == 200 and first.json()["state"] == "EXECUTED"
    assert again.status_code == 200 and again.json()["order_ids"] == first.json()["order_ids"]
    assert len([e for e in _events(plat, "order_submitted") if e["correlation_id"] == f"proposal-{pid}"]) == 1


def test_a_proposer_cannot_start_the_dashboard_and_a_taken_port_is_an_error(plat, web):
    from trader.testing import mmr

    res = mmr({**plat.env, "MMR_ROLE": "proposer"}, "--json", "web", "--port", "0", timeout=30)
    assert res.returncode != 0 and json.loads(res.stdout)["error"]["type"] == "RoleForbidden"
    taken = mmr(plat.env, "--json", "web", "--port", web[0].rsplit(":", 1)[1], timeout=30)
    assert taken.returncode == 1 and json.loads(taken.stdout)["error"]["type"] == "PortInUse"


def test_the_cli_path_never_imports_the_web_stack(plat):
    code = ("import sys, contextlib, io\nfrom trader.mmr_cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['--json', 'status']); main(['--json', 'commands', '--full'])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'jinja2', 'uvicorn', 'playwright')"
            " or m.startswith('trader.web')))")
    out = subprocess.run([sys.executable, "-c", code], env=plat.env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_chart_uses_stored_bars_when_there_are_some(plat, web):
    base, token, _ = web
    cli_ok(plat, "history", "ib", "--symbol", "AAPL", "--bar_size", "1 day", "--prev_days", "30", timeout=120)
    charts = httpx.get(f"{base}/partial/charts", headers=_bearer(token), timeout=30)
    assert charts.status_code == 200
    aapl = charts.text.split('data-symbol="AAPL"', 1)[1].split("</svg>", 1)[0]
    assert "<title>AAPL: stored 1 day bars</title>" in aapl
    assert len(aapl.split('points="', 1)[1].split('"', 1)[0].split()) >= 15  # about 20 sessions in 30 days
