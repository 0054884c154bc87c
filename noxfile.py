"""Developer and CI tasks. `nox` runs every default session (what CI runs).

Sessions: lint, typecheck, tests, build (wheels + smoke install outside the workspace),
template (plugin-template self-test), docs, bench (a smoke run; `-- --full` for figures),
and demo (not default: CI runs the README's own demo command).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nox

# uv trusts its bundled roots by default; the system store also holds corporate/proxy CAs
# that pip already honours, so sessions install wherever pip can.
os.environ.setdefault("UV_NATIVE_TLS", "1")

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
DEV = nox.project.dependency_groups(PYPROJECT, "dev")
PACKAGES = {
    "orchestrator-core": "orchestrator",
    "orchestrator-gigachat": "orchestrator_gigachat",
    "orchestrator-yandexgpt": "orchestrator_yandexgpt",
}
EDITABLE = [
    "-e",
    "./orchestrator-core[testing]",
    "-e",
    "./orchestrator-gigachat[emulator]",
    "-e",
    "./orchestrator-yandexgpt[emulator]",
]
COVERAGE_FLOOR = 90

nox.options.default_venv_backend = "uv|virtualenv"
# The demo runs in CI from the README's own command (.ci/run), not as a default session.
nox.options.sessions = ["lint", "typecheck", "tests", "build", "template", "docs", "bench"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check + ruff format --check over the whole repository."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on every package's source."""
    session.install(*EDITABLE, "mypy>=1.13", "trio>=0.25", "pytest>=8.2")
    session.run("mypy", "--strict")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite on asyncio and trio, with coverage >= 90% for each package."""
    # The aiohttp extra: its transport's tests and the contract kit over it run too.
    session.install(*EDITABLE, "-e", "./orchestrator-core[testing,aiohttp]", *DEV)
    session.run(
        "coverage",
        "run",
        "-m",
        "pytest",
        # The template self-test builds venvs of its own: it has the `template` session.
        "--ignore=tests/test_template.py",
        *session.posargs,
        env={"COVERAGE_FILE": str(ROOT / ".coverage")},
    )
    for distribution in PACKAGES:
        session.log(f"coverage of {distribution}")
        session.run(
            "coverage",
            "report",
            f"--include={distribution}/src/*",
            f"--fail-under={COVERAGE_FLOOR}",
            "--skip-covered",
            "--show-missing",
            env={"COVERAGE_FILE": str(ROOT / ".coverage")},
        )


@nox.session
def build(session: nox.Session) -> None:
    """Build each wheel, install them in a fresh venv outside the workspace, smoke-test."""
    session.install("build>=1.2")
    with tempfile.TemporaryDirectory(prefix="orchestrator-wheels-") as tmp:
        dist = Path(tmp) / "dist"
        for distribution in PACKAGES:
            session.run("python", "-m", "build", "--wheel", "--outdir", str(dist), distribution)
        venv = Path(tmp) / "venv"
        session.run("python", "-m", "venv", str(venv))
        python = str(venv / "bin" / "python")
        wheels = sorted(str(p) for p in dist.glob("*.whl"))
        session.run(python, "-m", "pip", "install", "--quiet", *wheels, external=True)
        session.run(
            python,
            str(ROOT / "tests" / "smoke_installed.py"),
            external=True,
            env={"PYTHONSAFEPATH": "1"},
        )


@nox.session
def template(session: nox.Session) -> None:
    """Render plugin-template, install it in a fresh venv, run its tests, check discovery."""
    # uv on the session's PATH: the self-test makes its venv and builds the wheel with it.
    session.install(*EDITABLE, *DEV, "uv")
    session.run("pytest", "tests/test_template.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Run `orchestrator demo` exactly as the README says (emulators on loopback)."""
    session.install(
        "./orchestrator-core",
        "./orchestrator-gigachat[emulator]",
        "./orchestrator-yandexgpt[emulator]",
    )
    session.run("orchestrator", "demo", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with warnings as errors."""
    session.install(*EDITABLE, "mkdocs-material>=9.5,<10")
    site = Path(tempfile.mkdtemp(prefix="orchestrator-site-")) / "site"
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        str(site),
        env={"NO_MKDOCS_2_WARNING": "1"},
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Router overhead benchmark: a smoke run by default (small counts, figures printed,
    nothing asserted); `nox -s bench -- --full` measures properly and writes
    docs/performance.md."""
    session.install(*EDITABLE)
    session.run("python", "bench/overhead.py", *session.posargs)
