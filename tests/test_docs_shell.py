"""Every shell block (```sh, ```bash, ```shell, ```console) of the README, the package READMEs
and docs/ runs as written, or says why not.

The HTML comment on the line before a block decides:

- none: the block runs in a fresh venv (its ``bin`` first on PATH, as after ``activate``),
  in a scratch copy of the clone: ``orchestrator-core/``, ``orchestrator-gigachat/``,
  ``orchestrator-yandexgpt/``, ``plugin-template/``, ``examples/`` and ``dist/`` holding the
  wheels ``nox -s build`` makes (built once for every block);
- ``<!-- run: same-venv -->``: runs after the page's previous block, in its venv and the
  directory it ended in (a page that is one story);
- ``<!-- not-run: REASON -->``: not run, for the reason given. Never for installing a
  package of this project by name from PyPI, where it is not published: such a block must
  say ``--find-links`` or install from the clone;
- ``<!-- demo-command -->`` / ``<!-- test-command -->``: the README's two commands that
  ``.ci/run`` executes as written.

Blocks run with bash ``-euo pipefail``; every command must exit 0. Slow (venvs, pip,
the demo): marked ``slow``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(
    [
        ROOT / "README.md",
        *(ROOT / "docs").rglob("*.md"),
        *ROOT.glob("orchestrator-*/README.md"),
        ROOT / "plugin-template" / "README.md",
    ]
)
FENCE = re.compile(r"^```(sh|bash|shell|console)\n(.*?)^```$", re.S | re.M)
MARKER = re.compile(r"<!--\s*(.*?)\s*-->")
#: Distributions of this repository, not (yet) on PyPI.
OURS = (
    "multi-llm-orchestrator-core",
    "orchestrator-gigachat",
    "orchestrator-yandexgpt",
    "orchestrator-openai",
    "orchestrator-ollama",
    "orchestrator-otel",
    "orchestrator-redis",
    "orchestrator-gateway",
    "orchestrator-langchain",
)
#: What a scratch clone holds.
CLONE = (
    "orchestrator-core",
    "orchestrator-gigachat",
    "orchestrator-yandexgpt",
    "orchestrator-openai",
    "orchestrator-ollama",
    "orchestrator-otel",
    "orchestrator-redis",
    "orchestrator-gateway",
    "orchestrator-langchain",
)
CLONE_EXTRA = ("plugin-template", "examples")


@dataclass(frozen=True)
class ShellBlock:
    path: Path
    line: int
    code: str
    marker: str  # "" when there is none

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def shell_blocks(path: Path) -> list[ShellBlock]:
    text = path.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.fullmatch(before.strip())
        found.append(
            ShellBlock(
                path,
                text.count("\n", 0, match.start()) + 1,
                match.group(2),
                marker.group(1) if marker else "",
            )
        )
    return found


ALL = [block for path in FILES for block in shell_blocks(path)]


def _pip_installs_by_name_from_pypi(code: str) -> list[str]:
    """Our distributions a ``pip install`` in ``code`` would fetch from an index by name."""
    bad = []
    for line in code.splitlines():
        words = shlex.split(line.split(" #", 1)[0]) if "pip" in line else []
        if "install" not in words or "--find-links" in words or "-f" in words:
            continue
        for word in words[words.index("install") + 1 :]:
            name = re.split(r"[\[<>=~!; ]", word, maxsplit=1)[0]
            if name in OURS or name == "orchestrator-core":
                bad.append(word)
    return bad


# -- fast checks of the markers ---------------------------------------------------------------


def test_there_are_shell_blocks_and_each_is_accounted_for() -> None:
    assert len(ALL) >= 10
    for block in ALL:
        kind = block.marker.split(":", 1)[0].strip()
        assert kind in ("", "run", "not-run", "demo-command", "test-command"), (
            f"{block.where}: unknown marker <!-- {block.marker} -->"
        )
        if kind == "not-run":
            reason = block.marker.split(":", 1)[1].strip() if ":" in block.marker else ""
            assert len(reason) > 10, f"{block.where}: say why it is not run"
        if kind == "run":
            assert block.marker == "run: same-venv", block.where


@pytest.mark.parametrize("block", ALL, ids=[b.where for b in ALL])
def test_no_block_installs_our_packages_from_pypi_by_name(block: ShellBlock) -> None:
    """They are not published: `pip install multi-llm-orchestrator-core` fails today, and
    `pip install orchestrator-core` installs someone else's project."""
    assert not _pip_installs_by_name_from_pypi(block.code), (
        f"{block.where} installs {_pip_installs_by_name_from_pypi(block.code)} from PyPI, "
        "where they are not published: install from the clone (./orchestrator-core) or from "
        "a wheelhouse (--find-links dist)"
    )


def test_the_ci_script_runs_the_readme_commands() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    marked = {b.marker for b in ALL if b.marker in ("demo-command", "test-command")}
    assert marked == {"demo-command", "test-command"}
    for marker in marked:
        assert f"readme_command {marker}" in script


def test_the_checker_catches_installs_from_pypi() -> None:
    assert _pip_installs_by_name_from_pypi("pip install orchestrator-core") == ["orchestrator-core"]
    assert _pip_installs_by_name_from_pypi('pip install "orchestrator-gigachat[emulator]"')
    assert not _pip_installs_by_name_from_pypi(
        "pip install --find-links dist orchestrator-gigachat"
    )
    assert not _pip_installs_by_name_from_pypi("pip install ./orchestrator-core cookiecutter")


# -- running them ----------------------------------------------------------------------------


def _stories() -> list[list[ShellBlock]]:
    """Runnable blocks grouped: a block and the ``same-venv`` blocks after it."""
    stories: list[list[ShellBlock]] = []
    for block in ALL:
        if block.marker == "run: same-venv":
            assert stories and stories[-1][-1].path == block.path, (
                f"{block.where}: same-venv needs a run block before it on the page"
            )
            stories[-1].append(block)
        elif block.marker == "":
            stories.append([block])
    return stories


STORIES = _stories()


def _clean_env() -> dict[str, str]:
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTEST_", "COVERAGE_", "UV_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["NO_COLOR"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        noise = re.compile(r"^WARNING: Location .* is ignored")
        output = [
            line for line in (result.stdout + result.stderr).splitlines() if not noise.match(line)
        ]
        pytest.fail(
            f"{command[-1][:200]}\nfailed ({result.returncode}):\n" + "\n".join(output[-80:])
        )
    return result.stdout


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheels ``nox -s build`` builds, built once for every block."""
    tmp = tmp_path_factory.mktemp("wheelhouse")
    venv = tmp / "builder"
    env = _clean_env()
    _run([sys.executable, "-m", "venv", str(venv)], tmp, env)
    dist = tmp / "dist"
    folders = [str(ROOT / folder) for folder in CLONE]
    _run(
        [str(venv / "bin" / "pip"), "wheel", "-q", "--no-deps", "-w", str(dist), *folders],
        tmp,
        env,
    )
    assert len(list(dist.glob("*.whl"))) == len(CLONE)
    return dist


@pytest.mark.slow
@pytest.mark.parametrize("story", STORIES, ids=[s[0].where for s in STORIES])
def test_shell_blocks_run_as_written(
    story: list[ShellBlock], wheelhouse: Path, tmp_path: Path
) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in (*CLONE, *CLONE_EXTRA):
        (clone / name).symlink_to(ROOT / name, target_is_directory=True)
    (clone / "dist").symlink_to(wheelhouse, target_is_directory=True)
    venv = tmp_path / "venv"
    env = _clean_env()
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    script = "\n".join(f"echo '+ {b.where}' >&2\n{b.code}" for b in story)
    _run(["bash", "-euo", "pipefail", "-c", script], clone, env)
