"""plugin-template tests itself: render it for several names (short, long, with digits, a
non-ASCII display name), run each generated README's "Develop" commands as written (install
the core from this checkout, the package with its extras, then its tests, ruff check, ruff
format --check and mypy --strict), and check that the orchestrator discovers the provider
and routes to it.

The projects are rendered next to a link to this checkout's ``orchestrator-core/``, as in a
clone, and share one venv (made by the first README run): each later run reinstalls only
what changed. Run it with ``nox -s template`` (or ``pytest tests/test_template.py``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "plugin-template"
CORE = REPO / "orchestrator-core"

#: Not the template's defaults, so every variable is really substituted.
CONTEXT = {
    "provider_name": "Template Check",
    "default_base_url": "https://llm.template-check.example/api/v1",
    "default_model": "tc-large",
    "author_name": "Template Tester",
    "author_email": "tester@example.com",
    "version": "0.3.1",
}
SLUG = "template-check"
IMPORT = "orchestrator_template_check"
CLASS = "TemplateCheckProvider"

#: More names whose generated code must pass its own checks: line lengths, import sorting
#: and look-alike letters all depend on them.
VARIANTS = {
    "short": {"provider_name": "Xy"},
    "long": {"provider_name": "Very Long Provider Name For Testing Purposes"},
    "digits": {"provider_name": "GPT4 Cloud 2", "default_model": "gpt4-cloud-2.5"},
    "non-ascii": {
        "provider_name": "Сбер Лаб Ёжик",  # noqa: RUF001 - Cyrillic on purpose
        "provider_slug": "sber-lab",
        "import_name": "orchestrator_sber_lab",
        "class_name": "SberLabProvider",
    },
}

pytestmark = pytest.mark.slow


def run(command: list[str], cwd: Path, timeout: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTEST_"))}
    env["NO_COLOR"] = "1"
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the projects are rendered: next to ``orchestrator-core/``, as in a clone."""
    folder = tmp_path_factory.mktemp("clone")
    (folder / CORE.name).symlink_to(CORE, target_is_directory=True)
    return folder


def render(context: dict[str, str], out: Path) -> Path:
    cookiecutter = pytest.importorskip("cookiecutter.main", reason="needs cookiecutter")
    return Path(
        cookiecutter.cookiecutter(
            str(TEMPLATE), no_input=True, extra_context=context, output_dir=str(out)
        )
    )


@pytest.fixture(scope="module")
def project(clone: Path) -> Path:
    return render(CONTEXT, clone)


@pytest.fixture(scope="module")
def shared_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty venv with pip: the generated README's commands install into it."""
    folder = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", str(folder)], cwd=folder.parent)
    return folder


def develop_commands(project: Path) -> str:
    """The generated README's "Develop" block (a bash block)."""
    readme = (project / "README.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"## Develop\n.*?```bash\n(.*?)```", readme, re.S)
    return block


def run_develop(project: Path, venv: Path) -> str:
    """The README's "Develop" commands, as written, in ``venv`` (its bin first on PATH)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTEST_"))}
    env |= {"VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}"}
    env["NO_COLOR"] = "1"
    # One mypy cache for every project: the core and its dependencies are checked once.
    env["MYPY_CACHE_DIR"] = str(venv.parent / "mypy-cache")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", develop_commands(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    noise = re.compile(r"^WARNING: Location .* is ignored")
    output = "\n".join(
        line for line in (result.stdout + result.stderr).splitlines() if not noise.match(line)
    )
    assert result.returncode == 0, f"{project.name}: README commands failed:\n{output[-6000:]}"
    return output


@pytest.fixture(scope="module")
def venv(project: Path, shared_venv: Path) -> Path:
    """The venv after the main project's README "Develop" commands ran in it: the core
    from this checkout, the generated package with its extras; its tests, lint and type
    checks passed. Returns its python."""
    out = run_develop(project, shared_venv)
    assert " passed" in out and "All checks passed!" in out and "Success:" in out
    return shared_venv / "bin" / "python"


def test_rendered_files(project: Path) -> None:
    assert project.name == f"orchestrator-{SLUG}"
    files = {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()}
    assert {
        "pyproject.toml",
        "README.md",
        "noxfile.py",
        ".github/workflows/ci.yml",
        "docs/index.md",
        f"src/{IMPORT}/__init__.py",
        f"src/{IMPORT}/provider.py",
        f"src/{IMPORT}/py.typed",
        "tests/test_contract.py",
    } <= files
    text = "".join((project / f).read_text() for f in files)
    assert "cookiecutter" not in text, "a template variable was left unrendered"
    assert "${{ matrix.python-version }}" in (project / ".github/workflows/ci.yml").read_text()
    provider = (project / f"src/{IMPORT}/provider.py").read_text()
    assert f"class {CLASS}(BaseProvider)" in provider
    assert CONTEXT["default_base_url"] in provider and CONTEXT["default_model"] in provider
    assert "self.http_client()" in provider
    pyproject = (project / "pyproject.toml").read_text()
    assert f'{SLUG} = "{IMPORT}"' in pyproject
    assert '"multi-llm-orchestrator-core>=0.1,<0.2"' in pyproject
    assert '"orchestrator-core' not in pyproject  # someone else's project on PyPI


def test_readme_develop_commands_pass(project: Path, venv: Path) -> None:
    """Tests, ruff check, ruff format --check and mypy --strict passed in the ``venv``
    fixture (the README's commands); the block is the one the guide documents."""
    assert develop_commands(project).splitlines()[:2] == [
        'pip install "../orchestrator-core[testing]"',
        'pip install -e ".[test,lint]"',
    ]
    assert "ruff format --check" in develop_commands(project)


@pytest.mark.parametrize("variant", VARIANTS)
def test_other_names_pass_their_own_checks(variant: str, clone: Path, venv: Path) -> None:
    """Each name's README commands as written: its tests, full lint and mypy --strict."""
    context = {**CONTEXT, **VARIANTS[variant]}
    context.pop("version")
    project = render(context, clone)
    out = run_develop(project, venv.parent.parent)
    assert " passed" in out and "All checks passed!" in out and "Success:" in out
    assert "would be reformatted" not in out


@pytest.mark.parametrize(
    ("context", "complaint"),
    [
        ({"provider_name": "Сбер"}, "provider_slug"),  # noqa: RUF001
        ({"provider_name": "42 Labs"}, "class_name"),
        ({"provider_name": "Acme", "import_name": "orchestrator-acme"}, "import_name"),
    ],
)
def test_names_that_cannot_work_are_refused(
    context: dict[str, str], complaint: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    cookiecutter = pytest.importorskip("cookiecutter", reason="needs cookiecutter")
    from cookiecutter.exceptions import FailedHookException

    with pytest.raises(FailedHookException):
        cookiecutter.main.cookiecutter(
            str(TEMPLATE), no_input=True, extra_context=context, output_dir=str(tmp_path)
        )
    assert complaint in capfd.readouterr().err
    assert not list(tmp_path.iterdir())


def test_router_discovers_and_routes_to_the_provider(project: Path, venv: Path) -> None:
    script = textwrap.dedent(
        f"""
        import json

        import anyio

        from orchestrator import PluginRegistry, Router
        from orchestrator.testing import FakeOpenAIServer, LoopbackServer

        registry = PluginRegistry()
        info = registry.provider_info("{SLUG}")
        app = FakeOpenAIServer(api_key="sk-template-check-0001")
        with LoopbackServer(app) as server:
            provider = registry.create_provider(
                "{SLUG}", api_key="sk-template-check-0001", base_url=server.base_url + "/v1"
            )
            router = Router(registry=registry)
            router.add_provider(provider)

            async def main():
                async with router:
                    return await router.route("ping")

            answer = anyio.run(main)
        print(json.dumps({{
            "class": info.cls.__name__,
            "distribution": info.distribution,
            "version": info.version,
            "answer": answer,
            "model": app.requests[-1].body["model"],
            "failures": [f.reason for f in registry.failures],
        }}))
        """
    )
    result = json.loads(run([str(venv), "-c", script], cwd=project).strip().splitlines()[-1])
    assert result == {
        "class": CLASS,
        "distribution": f"orchestrator-{SLUG}",
        "version": CONTEXT["version"],
        "answer": "Echo: ping",
        "model": CONTEXT["default_model"],
        "failures": [],
    }


def test_readme_usage_example_runs(project: Path, venv: Path) -> None:
    """The generated README's "Use" example, run as written: only the placeholder key is
    filled in and the default base URL (a real vendor's) pointed at a local fake."""
    readme = (project / "README.md").read_text()
    (example,) = re.findall(r"```python\n(.*?)```", readme, re.S)
    placeholder = 'api_key="..."'
    assert example.count(placeholder) == 1, example
    prelude = textwrap.dedent(
        """
        from orchestrator.testing import FakeOpenAIServer, LoopbackServer

        server = LoopbackServer(FakeOpenAIServer(api_key="sk-readme-0001")).start()
        """
    )
    filled = example.replace(
        placeholder, 'api_key="sk-readme-0001", base_url=server.base_url + "/v1"'
    )
    out = run([str(venv), "-c", prelude + filled + "\nserver.stop()\n"], cwd=project)
    assert out.strip().splitlines()[-1] == "Echo: Hello!"


def test_cli_lists_the_provider_with_its_version(venv: Path, project: Path) -> None:
    out = run([str(venv.parent / "orchestrator"), "providers"], cwd=project)
    line = next((line for line in out.splitlines() if SLUG in line), None)
    assert line is not None, out
    assert CONTEXT["version"] in line


def test_wheel_ships_the_package_data(project: Path, tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:  # pragma: no cover - depends on the machine
        pytest.skip("building the wheel uses uv")
    run([uv, "build", "--wheel", "--out-dir", str(tmp_path), str(project)], cwd=project)
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        points = next(n for n in names if n.endswith("entry_points.txt"))
        entry_points = archive.read(points).decode()
    assert f"{IMPORT}/py.typed" in names
    assert f"[orchestrator.providers]\n{SLUG} = {IMPORT}" in entry_points


def test_copier_renders_the_same_files(tmp_path: Path) -> None:
    """copier (the bonus) and cookiecutter produce the same package from the same answers."""
    copier = pytest.importorskip("copier", reason="needs copier")
    cookiecutter = pytest.importorskip("cookiecutter.main", reason="needs cookiecutter")
    by_cookiecutter = Path(
        cookiecutter.cookiecutter(
            str(TEMPLATE), no_input=True, extra_context=CONTEXT, output_dir=str(tmp_path / "cc")
        )
    )
    copier.run_copy(
        str(TEMPLATE), str(tmp_path / "copier"), data=CONTEXT, defaults=True, quiet=True
    )
    by_copier = tmp_path / "copier" / by_cookiecutter.name

    def files(root: Path) -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    assert files(by_copier) == files(by_cookiecutter)
    for name in files(by_cookiecutter):
        assert (by_copier / name).read_bytes() == (by_cookiecutter / name).read_bytes(), name
