"""Developer and CI tasks. `nox` runs every default session (what CI runs).

Sessions: lint, typecheck, tests, langchain (LangChain's standard suites), build (wheels
into dist/ + smoke install from there), template (plugin-template self-test), docs,
bench (a smoke run; `-- --full` for figures),
soak (the chaos soak at CI size; `-- --requests 10000 --backend asyncio` for a full run),
demo (not default: CI runs the README's own demo command), and litellm (not default: the
side-by-side benchmark against LiteLLM, a heavy install; `-- --write` updates
docs/performance.md).
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
#: folder -> distribution name (the core's folder keeps its old name: the distribution
#: orchestrator-core on PyPI is an unrelated project).
PACKAGES = {
    "orchestrator-core": "multi-llm-orchestrator-core",
    "orchestrator-gigachat": "orchestrator-gigachat",
    "orchestrator-yandexgpt": "orchestrator-yandexgpt",
    "orchestrator-openai": "orchestrator-openai",
    "orchestrator-ollama": "orchestrator-ollama",
    "orchestrator-otel": "orchestrator-otel",
    "orchestrator-redis": "orchestrator-redis",
    "orchestrator-gateway": "orchestrator-gateway",
    "orchestrator-langchain": "orchestrator-langchain",
}
#: Packages whose tests run in a session of their own (and check their coverage there).
OWN_SESSION = {"orchestrator-langchain": "langchain"}
#: The wheelhouse `nox -s build` leaves behind; the install docs use it with --find-links.
WHEELHOUSE = ROOT / "dist"
EDITABLE = [
    "-e",
    "./orchestrator-core[testing]",
    "-e",
    "./orchestrator-gigachat[emulator]",
    "-e",
    "./orchestrator-yandexgpt[emulator]",
    "-e",
    "./orchestrator-openai[emulator]",
    "-e",
    "./orchestrator-ollama[emulator]",
    "-e",
    "./orchestrator-otel[test]",
    "-e",
    "./orchestrator-redis",  # its tests start a real redis-server (Debian: redis-server)
    "-e",
    "./orchestrator-gateway[test]",
    "-e",
    "./orchestrator-langchain",
]
COVERAGE_FLOOR = 90

nox.options.default_venv_backend = "uv|virtualenv"
# The demo runs in CI from the README's own command (.ci/run), not as a default session.
nox.options.sessions = [
    "lint",
    "typecheck",
    "tests",
    "langchain",
    "build",
    "template",
    "docs",
    "bench",
    "soak",
]
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
    """mypy --strict on every package's source (with the aiohttp extra, which it imports)."""
    session.install(
        *EDITABLE,
        "-e",
        "./orchestrator-core[aiohttp]",
        "mypy>=1.13",
        "types-jsonschema",
        "trio>=0.25",
        "pytest>=8.2",
    )
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
        *(f"--ignore={folder}" for folder in OWN_SESSION),
        *session.posargs,
        env={"COVERAGE_FILE": str(ROOT / ".coverage")},
    )
    for folder, distribution in PACKAGES.items():
        if folder in OWN_SESSION:
            continue
        session.log(f"coverage of {distribution}")
        session.run(
            "coverage",
            "report",
            f"--include={folder}/src/*",
            f"--fail-under={COVERAGE_FLOOR}",
            "--skip-covered",
            "--show-missing",
            env={"COVERAGE_FILE": str(ROOT / ".coverage")},
        )


@nox.session
def langchain(session: nox.Session) -> None:
    """LangChain's own standard suites (langchain-tests: chat model and embeddings, unit and
    integration over the emulators) and the package's tests, with coverage >= 90%.

    A pytest invocation of its own: the standard suites' async tests need pytest-asyncio in
    auto mode, which the anyio-based main suite must not have (its config is the package's
    pyproject.toml, so the root's is not read)."""
    session.install(*EDITABLE, "-e", "./orchestrator-langchain[test]", "coverage>=7.5")
    data = str(ROOT / ".coverage.langchain")
    session.run(
        "coverage",
        "run",
        "--source=orchestrator_langchain",
        "-m",
        "pytest",
        "-c",
        "orchestrator-langchain/pyproject.toml",
        "--rootdir=orchestrator-langchain",
        "orchestrator-langchain/tests",
        *session.posargs,
        env={"COVERAGE_FILE": data},
    )
    session.run(
        "coverage",
        "report",
        "--include=orchestrator-langchain/src/*",
        f"--fail-under={COVERAGE_FLOOR}",
        "--show-missing",
        env={"COVERAGE_FILE": data},
    )


@nox.session
def build(session: nox.Session) -> None:
    """Build each wheel into dist/ (the wheelhouse the install docs use), install them from
    there in a fresh venv outside the workspace as the docs say, and smoke-test."""
    session.install("build>=1.2")
    WHEELHOUSE.mkdir(exist_ok=True)
    for distribution in PACKAGES.values():  # only ours: dist/ may hold other wheels
        for old in WHEELHOUSE.glob(f"{distribution.replace('-', '_')}-*.whl"):
            old.unlink()
    for folder in PACKAGES:
        session.run("python", "-m", "build", "--wheel", "--outdir", str(WHEELHOUSE), folder)
    with tempfile.TemporaryDirectory(prefix="orchestrator-wheels-") as tmp:
        venv = Path(tmp) / "venv"
        session.run("python", "-m", "venv", str(venv))
        python = str(venv / "bin" / "python")
        # The documented command: pip install --find-links dist <distributions>.
        session.run(
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--find-links",
            str(WHEELHOUSE),
            *PACKAGES.values(),
            external=True,
        )
        session.run(
            python,
            str(ROOT / "tests" / "smoke_installed.py"),
            external=True,
            env={"PYTHONSAFEPATH": "1"},
        )
    session.log(f"wheels in {WHEELHOUSE}")


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
    # A checked build, not a published one: the site goes to a temporary directory that is
    # removed afterwards, whether the build passes or fails.
    with tempfile.TemporaryDirectory(prefix="orchestrator-site-") as tmp:
        session.run(
            "mkdocs",
            "build",
            "--strict",
            "--site-dir",
            str(Path(tmp) / "site"),
            env={"NO_MKDOCS_2_WARNING": "1"},
        )


#: Compile the session's site-packages and the given source folders; like pip, leave out
#: files this Python cannot compile (a dependency's module for a newer Python).
_COMPILE = (
    "import compileall, sys, sysconfig\n"
    "for d in (sysconfig.get_path('purelib'), *sys.argv[1:]):\n"
    "    compileall.compile_dir(d, quiet=2, workers=0)"
)


@nox.session
def bench(session: nox.Session) -> None:
    """Full-stack benchmark (raw httpx vs provider vs Router, per shipped provider; the
    gateway vs the router in-process): a smoke
    run by default (small counts, figures printed, nothing asserted); `nox -s bench -- --full`
    measures properly and rewrites docs/performance.md; `-- --profile` ranks where the extra
    time goes."""
    # The aiohttp extra: the rows of the stack over the aiohttp transport.
    session.install(*EDITABLE, "-e", "./orchestrator-core[aiohttp]")
    # Bytecode, as `pip install` writes it: without it (uv does not compile; with
    # PYTHONDONTWRITEBYTECODE nothing is cached) every start-up row times the compiler.
    session.run("python", "-c", _COMPILE, *(str(p) for p in Path().glob("orchestrator-*/src")))
    session.run("python", "bench/overhead.py", *session.posargs)
    # The gateway against the router in-process (figures printed, never asserted).
    session.run("python", "bench/gateway.py", *session.posargs)


#: LiteLLM for the side-by-side benchmark, pinned exactly (an unpinned install of a package
#: with a history of compromised releases would run whatever is newest). Not installed by
#: any default session: only `nox -s litellm` brings it in.
LITELLM = "litellm==1.110.2"


@nox.session(default=False)
def litellm(session: nox.Session) -> None:
    """Side-by-side benchmark against LiteLLM (not in the default run: LiteLLM is a heavy
    install): raw httpx, our Router over the openai plugin and LiteLLM's Router against one
    OpenAI-compatible loopback server, interleaved in one run. A smoke run by default;
    `nox -s litellm -- --full --write` measures properly and rewrites the LiteLLM section of
    docs/performance.md."""
    session.install(*EDITABLE, LITELLM)
    session.run("python", "bench/litellm_compare.py", *session.posargs)


#: The soak's size in CI: each backend (asyncio, trio) makes this many requests.
SOAK_CI_REQUESTS = "600"


@nox.session
def soak(session: nox.Session) -> None:
    """Chaos soak (docs/reliability.md): faults, outages and cancellations through one router
    on loopback emulators; fails on any broken promise. By default the CI size (600 requests
    on asyncio and on trio, plus the fault matrix); arguments after `--` override, e.g.
    `nox -s soak -- --requests 10000 --backend asyncio --seed 1234`."""
    session.install(*EDITABLE, "-e", "./orchestrator-core[aiohttp]", "trio>=0.25")
    session.run("python", "-m", "soak", "--requests", SOAK_CI_REQUESTS, *session.posargs)
    if not session.posargs:
        # once with shared state on Redis, killed mid-run
        session.run(
            "python", "-m", "soak", "--requests", SOAK_CI_REQUESTS, "--no-matrix", "--redis"
        )
        # and once over the aiohttp transport (asyncio only), its connector checked as a pool
        session.run(
            "python",
            "-m",
            "soak",
            "--requests",
            SOAK_CI_REQUESTS,
            "--no-matrix",
            "--backend",
            "asyncio",
            env={"ORCHESTRATOR_HTTP_TRANSPORT": "aiohttp"},
        )
