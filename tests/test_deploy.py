"""The container and shell files, linted without a container engine: the compose file against the Compose
Specification's JSON schema (vendored by check-jsonschema), its ports and volumes, the Dockerfile through
hadolint, every shell script through shellcheck and ``bash -n``. The linters come from the test extra (PyPI
wheels that bundle the binaries), so CI needs no apt."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted({*ROOT.glob("*.sh"), *(ROOT / "scripts").glob("*.sh")})


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
    assert {"docker.sh", "start_mmr.sh", "run_tests.sh"} <= {p.name for p in SCRIPTS}
    result = subprocess.run([_tool("shellcheck"), "--external-sources", *map(str, SCRIPTS)],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    for script in SCRIPTS:
        parsed = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
        assert parsed.returncode == 0, f"{script.name}: {parsed.stderr}"
