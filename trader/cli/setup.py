"""``setup``: the first-run wizard for a real IB account, and the paper/live switch.

``mmr setup`` asks (prompt_toolkit) for every value not given as a flag — broker, IB Gateway host and port,
account id, trading mode, the Massive and Anthropic API keys — validates each, and writes them into the user's
``trader.yaml`` (mode 0600 once it holds a key) and, with ``--env-file``, into the ``.env`` docker-compose reads
(mode 0600). ``--non-interactive`` (implied by ``--json`` or a stdin that is not a terminal) never prompts: a
missing required value is an error. Secrets are never printed: the output says only whether a key is set.

Validation: the gateway port must accept a TCP connection; an account id looks like ``U1234567`` (live) or
``DU1234567`` (paper); a paper account is refused for ``--mode live`` and a live one for ``--mode paper``; live
needs the account id typed again (``--confirm-live ID`` without a terminal); a key is tried with one cheap request
(Massive: one ticker; Anthropic: the model list) — rejected with 401/403, left "unchecked" when offline.

Live mode tightens the defaults: ``approver_key_threshold_usd`` (0 = off) becomes 10,000 unless set (trader_service
applies the same to any live account, trader.strategy.guards.approver_key_threshold), and strategy auto-execution
stays off (paper-only strategies never trade a live account). With ``--env-file`` a live setup also generates the
approver key (``MMR_APPROVER_KEY``) into that file when it has none; otherwise the output's ``notes`` say it is
missing (approvals above the threshold are refused until trader_service has one).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from trader.cli.core import AppContext, output
from trader.errors import ConfigError
from trader.strategy.guards import LIVE_APPROVER_THRESHOLD_USD, approver_key_threshold

ACCOUNT_RE = re.compile(r"(DU|DF|U|F|I)\d{4,10}")
GATEWAY_PORTS = {"paper": 4002, "live": 4001}  # IB Gateway on the host
DOCKER_API_PORTS = {"paper": 4004, "live": 4003}  # the gateway container's forwarded ports (docker-compose.yml)
TWS_PORTS = {"paper": 7497, "live": 7496}


class SetupInvalid(ConfigError):
    """A value the wizard refused (the message names the field and why)."""


def is_paper_account(account: str) -> bool:
    return account.startswith("D")


def check_account(account: str, mode: str) -> str:
    account = account.strip().upper()
    if not ACCOUNT_RE.fullmatch(account):
        raise SetupInvalid(f"account: {account!r} is not an IB account id (U1234567 live, DU1234567 paper)")
    if mode == "live" and is_paper_account(account):
        raise SetupInvalid(f"account: {account} is a paper account id: live trading needs the live account (U…)")
    if mode == "paper" and not is_paper_account(account):
        raise SetupInvalid(f"account: {account} is a live account id: paper trading needs the paper account (DU…)")
    return account


def check_port(host: str, port: int, timeout: float = 2.0) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        raise SetupInvalid(
            f"ib_server_port: nothing accepts connections at {host}:{port} ({exc.strerror or exc}); start IB "
            f"Gateway/TWS with the API enabled (./docker.sh -i starts the gateway container) or fix host/port"
        ) from None


def check_key(kind: str, key: str, base_url: str = "", client: Any = None) -> str:
    """'accepted', or 'unchecked (offline)' when the service cannot be reached; SetupInvalid when refused."""
    import httpx

    if kind == "massive":
        url = (base_url or "https://api.massive.com").rstrip("/") + "/v3/reference/tickers"
        request = {"params": {"limit": 1}, "headers": {"Authorization": f"Bearer {key}"}}
    else:
        url = (base_url or "https://api.anthropic.com").rstrip("/") + "/v1/models"
        request = {"params": {"limit": 1}, "headers": {"x-api-key": key, "anthropic-version": "2023-06-01"}}
    own = client is None
    client = client or httpx.Client(timeout=5.0)
    try:
        response = client.get(url, **request)
    except httpx.HTTPError:
        return "unchecked (offline)"
    finally:
        if own:
            client.close()
    if response.status_code in (401, 403):
        raise SetupInvalid(f"{kind}_api_key: refused by {url} (HTTP {response.status_code})")
    return "accepted" if response.is_success else f"unchecked (HTTP {response.status_code})"


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a double-quoted JSON string is a valid YAML scalar


def write_trader_yaml(path: Path, values: dict[str, Any]) -> None:
    """Set top-level keys in trader.yaml in place (comments and other keys kept); 0600 when it holds a key."""
    text = path.read_text() if path.exists() else ""
    for key, value in values.items():
        line = f"{key}: {_yaml_scalar(value)}"
        pattern = re.compile(rf"^{re.escape(key)}:.*$", re.M)
        text = pattern.sub(lambda _m, line=line: line, text, count=1) if pattern.search(text) else (
            text + ("" if text.endswith("\n") or not text else "\n") + line + "\n")
    _write_private(path, text, private=any(values.get(k) for k in ("massive_api_key", "anthropic_api_key"))
                   or _mode(path) == 0o600)


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """Set KEY='value' lines in a docker-compose .env (other lines kept), mode 0600."""
    lines = path.read_text().splitlines() if path.exists() else []
    for key, value in values.items():
        if "'" in value or "\n" in value:
            raise SetupInvalid(f"{key}: a value with a single quote or a newline cannot go into {path}")
        lines = [ln for ln in lines if not ln.startswith(f"{key}=")] + [f"{key}='{value}'"]
    _write_private(path, "\n".join(lines) + "\n", private=True)


def env_file_value(path: Path, key: str) -> str:
    """KEY's value in a .env file (quotes stripped), '' when the file or the key is missing."""
    if not path.exists():
        return ""
    for line in reversed(path.read_text().splitlines()):
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1].strip().strip("'\"")
    return ""


def _mode(path: Path) -> int | None:
    return path.stat().st_mode & 0o777 if path.exists() else None


def _write_private(path: Path, text: str, private: bool) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600 if private else 0o644)
    os.replace(tmp, path)


def _prompter() -> Callable[..., str]:
    from prompt_toolkit import prompt

    def ask(question: str, default: str = "", secret: bool = False) -> str:
        suffix = " [set: Enter keeps it]" if secret and default else (f" [{default}]" if default and not secret else "")
        answer = prompt(f"{question}{suffix}: ", is_password=secret).strip()
        return answer or default

    return ask


def run_setup(app: AppContext, opts: dict[str, Any], interactive: bool,
              ask: Callable[..., str] | None = None, http_client: Any = None) -> dict[str, Any]:
    """Validate and write the settings; ``ask`` (prompt_toolkit by default) fills what flags left out."""
    from trader.config import ensure_user_config, load_trader_config, trader_config_path

    paths = app.paths
    ensure_user_config(paths)
    path = trader_config_path(paths)
    current = load_trader_config(paths, env={"TRADER_CONFIG": str(path)})
    ask = ask or (_prompter() if interactive else None)

    def value(name: str, question: str, default: Any, secret: bool = False) -> Any:
        if opts.get(name) is not None:
            return opts[name]
        if ask is None:
            return default
        return ask(question, "" if default is None else str(default), secret)

    broker = value("broker", "broker (sim: simulated, no account; ib: IB Gateway/TWS)", current.broker or "sim")
    if broker not in ("sim", "ib"):
        raise SetupInvalid(f"broker: must be sim or ib, not {broker!r}")
    written: dict[str, Any] = {"broker": broker}
    checks: dict[str, str] = {}
    mode = "paper"
    if broker == "ib":
        mode = value("mode", "trading mode (paper/live)", current.trading_mode)
        if mode not in ("paper", "live"):
            raise SetupInvalid(f"mode: must be paper or live, not {mode!r}")
        default_port = current.ib_server_port if current.broker == "ib" else GATEWAY_PORTS[mode]
        host = value("host", "IB Gateway/TWS host", current.ib_server_address)
        port_text = str(value("port", "IB Gateway/TWS API port (gateway 4002 paper / 4001 live; TWS 7497 / 7496)",
                              default_port))
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise SetupInvalid(f"ib_server_port: {port_text!r} is not a port number")
        port = int(port_text)
        other = "paper" if mode == "live" else "live"
        if port in (GATEWAY_PORTS[other], DOCKER_API_PORTS[other], TWS_PORTS[other]):
            raise SetupInvalid(f"ib_server_port: {port} is IB's {other} port, not {mode} (gateway "
                               f"{GATEWAY_PORTS[mode]}, TWS {TWS_PORTS[mode]}, gateway container {DOCKER_API_PORTS[mode]})")
        if not opts.get("skip_port_check"):
            check_port(host, port)
            checks["ib_server_port"] = "reachable"
        account_given = value("account", "IB account id (DU… paper, U… live)", current.ib_account or None)
        if not account_given:
            raise SetupInvalid("account: an IB account id is needed with broker ib (--account)")
        account = check_account(account_given, mode)
        if mode == "live":
            typed = opts.get("confirm_live")
            if typed is None and ask is not None:
                typed = ask(f"LIVE trading with real money in {account}: type the account id to confirm", "")
            if (typed or "").strip().upper() != account:
                raise SetupInvalid(f"mode: live trading not confirmed (type the account id {account}; "
                                   f"without a terminal pass --confirm-live {account})")
        written.update(ib_server_address=host, ib_server_port=port, ib_account=account, trading_mode=mode)
        if mode == "live" and current.approver_key_threshold_usd == 0:
            written["approver_key_threshold_usd"] = LIVE_APPROVER_THRESHOLD_USD
    for kind, base_url in (("massive", current.massive_base_url), ("anthropic", current.anthropic_base_url)):
        name = f"{kind}_api_key"
        key = value(name, f"{kind.capitalize()} API key (Enter: none)", getattr(current, name), secret=True)
        if key and key != getattr(current, name):
            checks[name] = "unchecked (--offline)" if opts.get("offline") else check_key(kind, key, base_url,
                                                                                            http_client)
            written[name] = key
    write_trader_yaml(path, written)
    try:
        final = load_trader_config(paths, env={"TRADER_CONFIG": str(path)})
    except ConfigError as exc:
        raise SetupInvalid(f"the written {path} does not load: {exc}") from None
    env_file = opts.get("env_file")
    notes: list[str] = []
    threshold = approver_key_threshold(final)
    if env_file:
        env_values = {"MASSIVE_API_KEY": final.massive_api_key, "ANTHROPIC_API_KEY": final.anthropic_api_key}
        if broker == "ib":
            env_values.update(IB_ACCOUNT=final.ib_account, TRADING_MODE=mode,
                              IB_GATEWAY_API_PORT=str(DOCKER_API_PORTS[mode]))
        if threshold and not env_file_value(Path(env_file), "MMR_APPROVER_KEY"):
            env_values["MMR_APPROVER_KEY"] = secrets.token_urlsafe(24)  # never printed; read it from the file
            notes.append(f"generated MMR_APPROVER_KEY into {env_file}: `approve ID --key K` above "
                         f"{threshold:,.0f} USD (docker-compose passes it to MMR; export it for ./start_mmr.sh)")
        write_env_file(Path(env_file), {k: v for k, v in env_values.items() if v})
    if threshold and not os.environ.get("MMR_APPROVER_KEY") and not notes:
        notes.append(f"approvals above {threshold:,.0f} USD need `approve ID --key K` with K = MMR_APPROVER_KEY in "
                     "trader_service's environment: none is set here, so they are refused until it is")
    return {
        "config_file": str(path),
        "config_mode": oct(_mode(path) or 0),
        "broker": final.broker,
        "mode": trading_mode(final),
        "ib_server": f"{final.ib_server_address}:{final.ib_server_port}" if final.broker == "ib" else None,
        "ib_account": final.ib_account or None,
        "approver_key_threshold_usd": threshold or 0,
        "massive_api_key": "set" if final.massive_api_key else "not set",
        "anthropic_api_key": "set" if final.anthropic_api_key else "not set",
        "checks": checks,
        "env_file": str(env_file) if env_file else None,
        "notes": notes,
    }


def trading_mode(config: Any) -> str:
    """'sim', 'paper' or 'live': what `status` shows first."""
    if config.broker != "ib":
        return "sim"
    return config.trading_mode


def setup_needed(config: Any) -> bool:
    """First start with broker ib and no account configured: the wizard must run."""
    return config.broker == "ib" and not config.ib_account


def _render(data: dict[str, Any], console: Any) -> None:
    colour = {"live": "bold red", "paper": "bold green"}.get(data["mode"], "bold")
    console.print(f"[{colour}]{data['mode'].upper()}[/] — broker {data['broker']}"
                  + (f" at {data['ib_server']}, account {data['ib_account']}" if data["ib_server"] else ""))
    console.print(f"written: {data['config_file']} ({data['config_mode']})"
                  + (f" and {data['env_file']} (0o600)" if data["env_file"] else ""))
    for name, result in data["checks"].items():
        console.print(f"  {name}: {result}")
    console.print(f"  Massive key: {data['massive_api_key']}, Anthropic key: {data['anthropic_api_key']}")
    for note in data.get("notes", []):
        console.print(f"[yellow]note[/]: {note}")


@click.command()
@click.option("--broker", type=click.Choice(["sim", "ib"]), default=None, help="sim (simulated) or ib.")
@click.option("--host", default=None, help="IB Gateway/TWS host.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="IB Gateway/TWS API port.")
@click.option("--account", default=None, help="IB account id (DU… paper, U… live).")
@click.option("--mode", type=click.Choice(["paper", "live"]), default=None, help="Trading mode (paper default).")
@click.option("--paper", "mode", flag_value="paper", help="Same as --mode paper.")
@click.option("--live", "mode", flag_value="live", help="Same as --mode live (asks for the account id).")
@click.option("--confirm-live", default=None, help="The account id typed again: confirms --live without a terminal.")
@click.option("--massive-key", "massive_api_key", default=None, help="Massive.com API key.")
@click.option("--anthropic-key", "anthropic_api_key", default=None, help="Anthropic API key.")
@click.option("--env-file", type=click.Path(dir_okay=False), default=None,
              help="Also write the docker-compose .env (mode 0600) with the account, mode and keys.")
@click.option("--skip-port-check", is_flag=True, help="Do not require the gateway port to accept connections.")
@click.option("--offline", is_flag=True, help="Do not try the API keys against their services.")
@click.option("--non-interactive", is_flag=True, help="Never prompt (also with --json or no terminal).")
@click.pass_obj
@output(_render)
def setup(app: AppContext, non_interactive: bool, **opts: Any) -> dict[str, Any]:
    """Set up IB host/port, account, paper/live mode and API keys in trader.yaml (prompts for what flags omit)."""
    interactive = not (non_interactive or app.json or not sys.stdin.isatty())
    return run_setup(app, opts, interactive)
