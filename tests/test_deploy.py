"""The container and shell files, linted without a container engine: the compose file against the Compose
Specification's JSON schema (vendored by check-jsonschema), its ports and volumes, the Dockerfile through
hadolint, every shell script through shellcheck and ``bash -n``. The linters come from the test extra (PyPI
wheels that bundle the binaries), so CI needs no apt."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
_NOT_OURS = {".git", ".venv", ".venv-nautilus", "node_modules", "__pycache__"}


def _shell_scripts() -> list[Path]:
    """Every shell script of the checkout: *.sh, and any file whose shebang names bash or sh (.ci/run)."""
    found = []
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in _NOT_OURS and not d.startswith(".venv")]
        for name in files:
            path = Path(top, name)
            if name.endswith(".sh"):
                found.append(path)
            elif "." not in name:
                with path.open("rb") as fh:
                    first = fh.readline(200)
                if first.startswith(b"#!") and first.rstrip().endswith((b"bash", b"/sh")):
                    found.append(path)
    return sorted(found)


SCRIPTS = _shell_scripts()


def _tool(name: str) -> str:
    """A linter installed by the test extra (next to this interpreter), else on PATH; fails when missing."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} is missing: install the test extra (pip install -e '.[test]')"
    return found


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_matches_the_compose_specification(compose):
    import check_jsonschema
    import jsonschema

    schema_file = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(compose)
    # The validator itself must catch a broken file (an unknown service key).
    broken = {**compose, "services": {**compose["services"], "mmr": {**compose["services"]["mmr"], "prots": []}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validators.validator_for(schema)(schema).validate(broken)


def test_every_published_port_is_on_loopback(compose):
    published = [(name, p) for name, svc in compose["services"].items() for p in svc.get("ports", [])]
    assert len(published) >= 8
    for name, port in published:
        assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name} publishes {port!r} beyond loopback"


def test_gateway_sidecar_and_mmr_wiring(compose):
    services = compose["services"]
    gateway = services["ib-gateway"]
    assert gateway["image"].startswith("ghcr.io/gnzsnz/ib-gateway:")
    for var in ("TWS_USERID", "TWS_PASSWORD", "TRADING_MODE", "TWOFA_TIMEOUT_ACTION", "AUTO_RESTART_TIME",
                "RELOGIN_AFTER_TWOFA_TIMEOUT", "TWS_SETTINGS_PATH", "SAVE_TWS_SETTINGS", "BYPASS_WARNING",
                "VNC_SERVER_PASSWORD"):
        assert var in gateway["environment"], var
    # Credentials come from .env, never written into the compose file.
    assert gateway["environment"]["TWS_PASSWORD"].startswith("${")
    # The forwarded API ports (4003 live / 4004 paper), not the gateway's own loopback-only 4001/4002.
    targets = {p.rsplit(":", 1)[1] for p in gateway["ports"]}
    assert {"4003", "4004"} <= targets
    mmr = services["mmr"]
    assert mmr["environment"]["BROKER"] == "ib"
    assert mmr["environment"]["IB_SERVER_ADDRESS"] == "ib-gateway"
    assert re.fullmatch(r"\$\{IB_GATEWAY_API_PORT:-4004\}", mmr["environment"]["IB_SERVER_PORT"])
    assert "ib-gateway" in mmr["depends_on"]


def test_profiles_and_named_volumes(compose):
    services = compose["services"]
    assert services["ib-gateway"]["profiles"] == ["ib"] and services["mmr"]["profiles"] == ["ib"]
    sim = services["mmr-sim"]
    assert sim["profiles"] == ["sim"] and sim["environment"]["BROKER"] == "sim" and "depends_on" not in sim
    named = set(compose["volumes"])
    assert {"mmr-data", "ib-settings"} <= named
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            source = vol.split(":", 1)[0]
            assert source in named, f"{name} mounts {source!r}, not a named volume"
    assert services["mmr"]["volumes"][0].split(":")[1] == "/data"


def test_dockerfile_runs_as_non_root_with_a_status_healthcheck():
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    instructions = parser.structure
    final_stage = [i for i in instructions][max(n for n, i in enumerate(instructions) if i["instruction"] == "FROM"):]
    assert final_stage[0]["value"].startswith("python:3.11-slim")
    users = [i["value"] for i in final_stage if i["instruction"] == "USER"]
    assert users and not users[-1].startswith(("root", "0")), users
    health = [i["value"] for i in instructions if i["instruction"] == "HEALTHCHECK"]
    assert health and '"mmr", "--json", "status"' in health[0]
    runs = " ".join(i["value"] for i in instructions if i["instruction"] == "RUN")
    assert "pyproject.toml" in runs and "/opt/venv" in runs


def test_dockerfile_is_hadolint_clean():
    result = subprocess.run([_tool("hadolint"), "--no-color", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shell_scripts_are_shellcheck_clean_and_parse():
    assert {"docker.sh", "start_mmr.sh", "run_tests.sh", "ensure_venv.sh", "run"} <= {p.name for p in SCRIPTS}
    result = subprocess.run([_tool("shellcheck"), "--external-sources", *map(str, SCRIPTS)],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    for script in SCRIPTS:
        parsed = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
        assert parsed.returncode == 0, f"{script.name}: {parsed.stderr}"


# --- docker.sh against a fake engine that records its arguments ---------------------------------------------

FAKE_ENGINE = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$FAKE_LOG"
case "$*" in
  *" ps -q "*) echo cid123 ;;
  inspect*) echo healthy ;;
esac
"""


def _base_tools(d: Path) -> Path:
    """A PATH directory with only the tools docker.sh uses, so an engine installed on the machine is never
    picked up in place of the fakes."""
    tools = d / "tools"
    if not tools.exists():
        tools.mkdir()
        for name in ("bash", "sed", "grep", "mktemp", "chmod", "mv", "basename", "dirname", "head", "od", "tr",
                     "cat", "sleep", "tail", "rm"):
            (tools / name).symlink_to(shutil.which(name))
    return tools


@pytest.fixture
def docker_dir(tmp_path):
    """A copy of docker.sh and the compose file in a temp dir, with a fake `docker` and `podman` first on PATH."""
    for name in ("docker.sh", "docker-compose.yml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for engine in ("docker", "podman"):
        (bin_dir / engine).write_text(FAKE_ENGINE)
        (bin_dir / engine).chmod(0o755)
    return tmp_path


def _docker_sh(d: Path, *args: str, answers: str = "", engine: str | None = None):
    env = {"PATH": f"{d / 'bin'}:{_base_tools(d)}", "FAKE_LOG": str(d / "engine.log"), "HOME": str(d)}
    if engine:
        env["MMR_ENGINE"] = engine
    result = subprocess.run(["bash", str(d / "docker.sh"), *args], input=answers, capture_output=True, text=True,
                            env=env, timeout=30, cwd=d)
    log = (d / "engine.log").read_text() if (d / "engine.log").exists() else ""
    return result, log


def test_guided_start_writes_env_0600_and_never_prints_the_password(docker_dir):
    result, log = _docker_sh(docker_dir, "-g", answers="ibuser\ns3cr3t-pw\nDU1234567\n\n")
    assert result.returncode == 0, result.stderr
    env_file = docker_dir / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    text = env_file.read_text()
    assert "TWS_PASSWORD='s3cr3t-pw'" in text and "TRADING_MODE='paper'" in text
    assert "IB_GATEWAY_API_PORT='4004'" in text
    assert "s3cr3t-pw" not in result.stdout + result.stderr + log
    assert "compose --profile ib build" in log and "compose --profile ib up -d" in log
    assert "inspect --format {{.State.Health.Status}} cid123" in log
    assert "compose --profile ib exec -T mmr mmr status" in log


def test_guided_live_needs_the_typed_account_and_a_live_account_id(docker_dir):
    refused, log = _docker_sh(docker_dir, "-g", answers="ibuser\npw\nDU1234567\nlive\nDU1234567\n")
    assert refused.returncode == 1 and "paper account id" in refused.stderr
    unconfirmed, log = _docker_sh(docker_dir, "-g", answers="ibuser\npw\nU7654321\nlive\nyes\n")
    assert unconfirmed.returncode == 1 and "not confirmed" in unconfirmed.stderr
    assert not (docker_dir / ".env").exists() and "up -d" not in log
    confirmed, log = _docker_sh(docker_dir, "-g", answers="ibuser\npw\nU7654321\nlive\nU7654321\n")
    assert confirmed.returncode == 0, confirmed.stderr
    text = (docker_dir / ".env").read_text()
    assert "TRADING_MODE='live'" in text and "IB_GATEWAY_API_PORT='4003'" in text


def test_bad_account_id_is_refused(docker_dir):
    result, log = _docker_sh(docker_dir, "-g", answers="ibuser\npw\n12345\n\n")
    assert result.returncode == 1 and "not an IB account id" in result.stderr and "build" not in log
    live_for_paper, log = _docker_sh(docker_dir, "-g", answers="ibuser\npw\nU7654321\npaper\n")
    assert live_for_paper.returncode == 1 and "live account id: paper trading" in live_for_paper.stderr
    assert "build" not in log and not (docker_dir / ".env").exists()


def test_clean_keeps_volumes_unless_forced_and_confirmed(docker_dir):
    kept, log = _docker_sh(docker_dir, "-c")
    assert kept.returncode == 0 and "down --remove-orphans" in log and "--volumes" not in log
    refused, log = _docker_sh(docker_dir, "-c", "--force", answers="yes\n")
    assert refused.returncode == 1 and "--volumes" not in log
    confirmed, log = _docker_sh(docker_dir, "-c", "--force", answers="delete volumes\n")
    assert confirmed.returncode == 0 and "down --volumes --remove-orphans" in log


def test_podman_profiles_and_usage(docker_dir):
    result, log = _docker_sh(docker_dir, "-u", "--sim", engine="podman")
    assert result.returncode == 0, result.stderr
    assert "podman compose --profile sim up -d" in log and "ps -q mmr-sim" in log
    gateway, log = _docker_sh(docker_dir, "-i")
    assert "compose --profile ib up -d ib-gateway" in log
    usage, _ = _docker_sh(docker_dir, "-x")
    assert usage.returncode == 2
    (docker_dir / "bin" / "docker").unlink()  # podman alone: picked without MMR_ENGINE
    alone, log = _docker_sh(docker_dir, "-d")
    assert alone.returncode == 0 and log.strip().splitlines()[-1].startswith("podman compose --profile ib")
    (docker_dir / "bin" / "podman").unlink()
    neither, _ = _docker_sh(docker_dir, "-u")
    assert neither.returncode == 1 and "neither docker nor podman" in neither.stderr


def test_build_down_sync_shell_and_logs_verbs(docker_dir):
    built, log = _docker_sh(docker_dir, "-b", "--sim")
    assert built.returncode == 0 and log.strip().endswith("docker compose --profile sim build")
    down, log = _docker_sh(docker_dir, "-d")
    assert down.returncode == 0 and "compose --profile ib --profile sim down" in log and "--volumes" not in log
    for name in ("trader", "strategies", "config_defaults"):
        (docker_dir / name).mkdir()
    synced, log = _docker_sh(docker_dir, "-s", "--ib")
    assert synced.returncode == 0, synced.stderr
    assert "compose --profile ib ps -q mmr" in log
    for name in ("trader", "strategies", "config_defaults"):
        assert f"docker cp {name}/. cid123:/app/{name}/" in log
    assert "compose --profile ib restart mmr" in log
    shell, log = _docker_sh(docker_dir, "-e")  # no credentials in .env: the sim profile
    assert shell.returncode == 0 and log.strip().endswith("compose --profile sim exec mmr-sim bash")
    logs, log = _docker_sh(docker_dir, "-l")
    assert logs.returncode == 0 and log.strip().endswith("compose --profile sim logs -f")
    two, _ = _docker_sh(docker_dir, "-b", "-u")
    assert two.returncode == 1 and "one action at a time" in two.stderr


def test_guided_live_generates_the_approver_key_once(docker_dir):
    result, log = _docker_sh(docker_dir, "-g", answers="ibuser\npw\nU7654321\nlive\nU7654321\n")
    assert result.returncode == 0, result.stderr
    key = re.search(r"^MMR_APPROVER_KEY='([0-9a-f]{48})'$", (docker_dir / ".env").read_text(), re.M)
    assert key and key.group(1) not in result.stdout + result.stderr + log
    again, _ = _docker_sh(docker_dir, "-g", answers="\n\n\nlive\nU7654321\n")  # Enter keeps every .env value
    assert again.returncode == 0, again.stderr
    assert f"MMR_APPROVER_KEY='{key.group(1)}'" in (docker_dir / ".env").read_text()


# --- start_mmr.sh: its switches, with the venv step stubbed and `python -m trader.mmr_cli` recorded ------------

FAKE_PY = """#!/usr/bin/env bash
if [ "$1" = -c ]; then exec "$REAL_PY" "$@"; fi
echo "$* tty=$([ -t 0 ] && echo yes || echo no)" >> "$FAKE_LOG"
"""


@pytest.fixture
def start_dir(tmp_path):
    """start_mmr.sh in a temp dir whose scripts/ensure_venv.sh points MMR_PY at a recorder (the real interpreter
    answers only the `-c` first-start check, against a temp MMR_HOME)."""
    shutil.copy2(ROOT / "start_mmr.sh", tmp_path / "start_mmr.sh")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "ensure_venv.sh").write_text(f'MMR_PY="{tmp_path}/fake_py"\n')
    (tmp_path / "fake_py").write_text(FAKE_PY)
    (tmp_path / "fake_py").chmod(0o755)
    (tmp_path / "home" / "config").mkdir(parents=True)
    return tmp_path


def _start(d: Path, *args: str, trader_yaml: str = "", tty: bool = False):
    from trader.testing import clean_env

    (d / "home" / "config" / "trader.yaml").write_text(trader_yaml)
    (d / "calls.log").unlink(missing_ok=True)
    env = {**clean_env(), "MMR_HOME": str(d / "home"), "FAKE_LOG": str(d / "calls.log"), "REAL_PY": sys.executable}
    if tty:  # the first-start wizard needs a terminal: give it a pseudo-terminal as stdin
        import pty

        leader, follower = pty.openpty()
        try:
            result = subprocess.run(["bash", str(d / "start_mmr.sh"), *args], stdin=follower, capture_output=True,
                                    text=True, env=env, timeout=60, cwd=d)
        finally:
            os.close(leader)
            os.close(follower)
    else:
        result = subprocess.run(["bash", str(d / "start_mmr.sh"), *args], stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, env=env, timeout=60, cwd=d)
    calls = (d / "calls.log").read_text().splitlines() if (d / "calls.log").exists() else []
    return result, calls


def test_start_mmr_setup_paper_and_live_switches(start_dir):
    result, calls = _start(start_dir, "--setup")
    assert result.returncode == 0 and calls == ["-m trader.mmr_cli setup --env-file .env tty=no"]
    result, calls = _start(start_dir, "--setup", "--live")
    assert calls == ["-m trader.mmr_cli setup --env-file .env --live tty=no"]
    result, calls = _start(start_dir, "--paper")
    assert result.returncode == 0, result.stderr
    assert calls == ["-m trader.mmr_cli setup --broker ib --paper --env-file .env tty=no", "-m trader.mmr_cli up tty=no"]
    result, calls = _start(start_dir, "--live", trader_yaml="broker: ib\nib_account: U1234567\n")
    assert calls[0] == "-m trader.mmr_cli setup --broker ib --live --env-file .env tty=no"


def test_start_mmr_first_start_with_ib_and_no_account_runs_the_wizard(start_dir):
    result, calls = _start(start_dir)  # nothing configured: the simulated broker, no wizard
    assert result.returncode == 0 and calls == ["-m trader.mmr_cli up tty=no"]
    result, calls = _start(start_dir, trader_yaml="broker: ib\n")  # no terminal to ask on: say how, start nothing
    assert result.returncode == 1 and "./start_mmr.sh --setup" in result.stderr and calls == []
    result, calls = _start(start_dir, trader_yaml="broker: ib\n", tty=True)
    assert result.returncode == 0, result.stderr
    assert calls == ["-m trader.mmr_cli setup --broker ib --env-file .env tty=yes", "-m trader.mmr_cli up tty=yes"]
    result, calls = _start(start_dir, trader_yaml="broker: ib\nib_account: DU1234567\n")
    assert calls == ["-m trader.mmr_cli up tty=no"]
    result, calls = _start(start_dir, "--stop", trader_yaml="broker: ib\n")  # stopping never asks
    assert result.returncode == 0 and calls == ["-m trader.mmr_cli down tty=no"]


def test_env_file_with_credentials_is_never_committed_nor_built_in():
    """.env holds the IB password and API keys: git ignores it (and the temp files it is written through), the
    image build context leaves it out."""
    names = [".env", ".env.tmp", ".env.AbC123"]
    ignored = subprocess.run(["git", "check-ignore", *names], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert ignored.stdout.split() == names, ignored.stdout + ignored.stderr
    docker_ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in docker_ignored and ".env.*" in docker_ignored
