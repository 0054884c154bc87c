"""deploy/: the Dockerfile, compose file and configuration docs/deploying.md shows. Containers
cannot run here, so the files are parsed and checked against each other and the repository."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from orchestrator.settings import load_settings
from orchestrator_gateway.config import load_gateway_settings

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            out.append((instruction.upper(), rest.strip()))
    return out


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def gateway_services() -> dict[str, Any]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image") == "orchestrator-gateway:local"
    }


def test_dockerfile() -> None:
    steps = dockerfile()
    known = {
        "FROM",
        "ENV",
        "WORKDIR",
        "COPY",
        "RUN",
        "USER",
        "EXPOSE",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "CMD",
    }
    assert {i for i, _ in steps} <= known
    assert steps[0][0] == "FROM"
    for instruction, args in steps:
        if instruction == "COPY":
            *sources, _ = shlex.split(args)
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    (user,) = [a for i, a in steps if i == "USER"]
    assert user not in ("root", "0")
    (cmd,) = [a for i, a in steps if i == "CMD"]
    command = json.loads(cmd)
    assert command[:2] == ["orchestrator", "serve"]
    config = command[command.index("--config") + 1]
    copied = [shlex.split(a) for i, a in steps if i == "COPY"]
    assert ["deploy/orchestrator.toml", config] in copied
    (expose,) = [a for i, a in steps if i == "EXPOSE"]
    settings = load_gateway_settings(_toml()["gateway"])
    assert int(expose) == settings.port
    installed = " ".join(a for i, a in steps if i == "RUN")
    for package in ("orchestrator-core", "orchestrator-gateway"):
        assert f"./{package}" in installed
    assert ("STOPSIGNAL", "SIGTERM") in steps


def _toml() -> dict[str, Any]:
    import tomllib

    return tomllib.loads((DEPLOY / "orchestrator.toml").read_text())


def test_compose_runs_two_gateways_and_redis() -> None:
    data = compose()
    services = data["services"]
    gateways = gateway_services()
    assert len(gateways) == 2
    assert services["redis"]["image"].startswith("redis:")
    settings = load_gateway_settings(_toml()["gateway"])
    build = next(iter(gateways.values()))["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    published = []
    for service in gateways.values():
        assert "redis" in service["depends_on"]
        grace = int(service["stop_grace_period"].removesuffix("s"))
        assert grace > settings.shutdown_timeout, "compose would kill streams still finishing"
        (port,) = service["ports"]
        host, outside, inside = port.split(":")
        assert host == "127.0.0.1" and int(inside) == settings.port
        published.append(outside)
        assert "/health/" in " ".join(service["healthcheck"]["test"])
    assert len(set(published)) == 2


def test_compose_passes_every_variable_the_configuration_needs() -> None:
    def strings(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [s for v in value.values() for s in strings(v)]
        return [value] if isinstance(value, str) else []

    text = " ".join(strings(_toml()))  # values only: comments may mention ${VAR}
    needed = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    needed |= {key["key_env"] for key in _toml()["gateway"]["keys"].values() if "key_env" in key}
    for name, service in gateway_services().items():
        assert needed <= set(service["environment"]), name


def test_the_configuration_loads() -> None:
    env = dict.fromkeys(("GIGACHAT_CREDENTIALS", "YC_API_KEY", "YC_FOLDER_ID"), "x")
    _, providers = load_settings(DEPLOY / "orchestrator.toml", env=env)
    settings = load_gateway_settings(_toml()["gateway"])
    for model in settings.models.values():
        assert set(model.providers) <= set(providers)
    hashes = settings.key_hashes({"GATEWAY_KEY_BACKEND": "k1", "GATEWAY_KEY_REPORTS": "k2"})
    assert sorted(hashes.values()) == ["backend", "reports"]


def test_the_docs_show_these_files() -> None:
    page = (ROOT / "docs" / "deploying.md").read_text()
    for name in ("Dockerfile", "compose.yaml", "orchestrator.toml"):
        assert f'--8<-- "deploy/{name}"' in page
