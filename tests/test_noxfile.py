"""The noxfile's build and docs sessions, run against a stand-in for nox: the build leaves
the wheelhouse the install docs name, the docs build leaves no temporary directory."""

from __future__ import annotations

import importlib.util
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


class FakeSession:
    def __init__(self) -> None:
        self.runs: list[tuple[str, ...]] = []
        self.posargs: list[str] = []

    def install(self, *args: str) -> None:
        pass

    def log(self, *args: Any) -> None:
        pass

    def run(self, *args: str, **kwargs: Any) -> None:
        self.runs.append(args)
        if args[:2] == ("mkdocs", "build"):
            site = Path(args[args.index("--site-dir") + 1])
            site.mkdir(parents=True)
            (site / "index.html").write_text("<html></html>")


@pytest.fixture
def noxfile(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    fake = types.ModuleType("nox")
    fake.session = lambda *a, **k: a[0] if a and callable(a[0]) else (lambda f: f)  # type: ignore[attr-defined]
    fake.options = types.SimpleNamespace()  # type: ignore[attr-defined]
    fake.project = types.SimpleNamespace(  # type: ignore[attr-defined]
        load_toml=lambda path: {}, dependency_groups=lambda data, name: []
    )
    fake.Session = FakeSession  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nox", fake)
    spec = importlib.util.spec_from_file_location("noxfile_under_test", ROOT / "noxfile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_session_removes_its_site_directory(noxfile: types.ModuleType) -> None:
    session = FakeSession()
    noxfile.docs(session)
    (build,) = [r for r in session.runs if r[:2] == ("mkdocs", "build")]
    site = Path(build[build.index("--site-dir") + 1])
    assert site.parent.name.startswith("orchestrator-site-")
    assert not site.parent.exists(), "the docs build left its temporary directory behind"


def test_build_session_fills_the_documented_wheelhouse(
    noxfile: types.ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(noxfile, "WHEELHOUSE", tmp_path / "dist")
    session = FakeSession()
    noxfile.build(session)
    outdirs = {r[r.index("--outdir") + 1] for r in session.runs if "--outdir" in r}
    assert outdirs == {str(tmp_path / "dist")}
    (install,) = [r for r in session.runs if "install" in r]
    names = list(install[install.index(str(tmp_path / "dist")) + 1 :])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"pip install --find-links dist {' '.join(names)}\n" in readme
    assert names[0] == "multi-llm-orchestrator-core"
    assert "dist/" in (ROOT / ".gitignore").read_text().splitlines()


def test_litellm_session_is_one_command_and_stays_out_of_the_default_run(
    noxfile: types.ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`nox -s litellm` installs LiteLLM itself (pinned exactly) and runs the comparison;
    it is not a default session, and no default session or project file brings LiteLLM in."""
    assert "litellm" not in noxfile.nox.options.sessions
    assert noxfile.LITELLM.startswith("litellm==")
    session = FakeSession()
    installed: list[str] = []
    session.install = lambda *args: installed.extend(args)  # type: ignore[method-assign]
    session.posargs = ["--full", "--write"]
    noxfile.litellm(session)
    assert noxfile.LITELLM in installed
    assert session.runs == [("python", "bench/litellm_compare.py", "--full", "--write")]
    assert (ROOT / "bench" / "litellm_compare.py").is_file()

    monkeypatch.setattr(noxfile, "WHEELHOUSE", tmp_path / "dist")
    for name in noxfile.nox.options.sessions:  # what CI runs
        default = FakeSession()
        pulled: list[str] = []
        default.install = lambda *args, out=pulled: out.extend(args)  # type: ignore[method-assign]
        getattr(noxfile, name)(default)
        # A word of its own: this checkout's folder may be named after the branch.
        args = [*pulled, *(arg for run in default.runs for arg in run)]
        assert not [arg for arg in args if re.search(r"(?<![\w-])litellm", arg)], name
    for project_file in ("pyproject.toml", "uv.lock"):
        assert "litellm" not in (ROOT / project_file).read_text(encoding="utf-8").lower()
    doc = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    assert "<!-- litellm:start -->" in doc and "<!-- litellm:end -->" in doc
