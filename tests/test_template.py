"""plugin-template tests itself: render it, install the result into a fresh venv with
orchestrator-core from this checkout, run the generated package's own tests, lint and type
checks there, and check that the orchestrator discovers the provider and routes to it.

Run it with ``nox -s template`` (or ``pytest tests/test_template.py -m slow``).
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
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cookiecutter = pytest.importorskip("cookiecutter.main", reason="needs cookiecutter")
    out = tmp_path_factory.mktemp("rendered")
    path = cookiecutter.cookiecutter(
        str(TEMPLATE), no_input=True, extra_context=CONTEXT, output_dir=str(out)
    )
    return Path(path)


@pytest.fixture(scope="module")
def venv(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with orchestrator-core[testing] from this checkout and the generated
    package installed as its guide says (``pip install -e ".[test,lint]"``)."""
    folder = tmp_path_factory.mktemp("venv") / "venv"
    python = folder / "bin" / "python"
    packages = [f"{CORE}[testing]", "-e", f"{project}[test,lint]"]
    uv = shutil.which("uv")
    if uv:
        run([uv, "venv", "--python", sys.executable, str(folder)], cwd=project)
        run([uv, "pip", "install", "--python", str(python), *packages], cwd=project)
    else:  # pragma: no cover - depends on the machine
        run([sys.executable, "-m", "venv", str(folder)], cwd=project)
        run([str(python), "-m", "pip", "install", "-q", *packages], cwd=project)
    return python


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
    assert '"orchestrator-core>=0.1,<0.2"' in pyproject


def test_generated_tests_pass(project: Path, venv: Path) -> None:
    out = run([str(venv), "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project)
    assert " passed" in out and "failed" not in out and "error" not in out


def test_generated_code_passes_ruff_and_mypy_strict(project: Path, venv: Path) -> None:
    run([str(venv), "-m", "ruff", "check", "--no-cache", "."], cwd=project)
    run([str(venv), "-m", "ruff", "format", "--check", "--no-cache", "."], cwd=project)
    run([str(venv), "-m", "mypy", "--strict", "--no-incremental"], cwd=project, timeout=600)


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
