"""Every code block of docs/plugins/*.md is exercised, and the hook reference matches
``orchestrator.hookspecs`` (names and signatures, read with ``inspect``)."""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from orchestrator import hookspecs

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "plugins"
GUIDE = DOCS / "creating-a-provider.md"
HOOKS = DOCS / "hooks.md"
TEMPLATE = REPO / "plugin-template"


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int

    @property
    def file(self) -> str | None:
        """The project path a block shows, from its first line ``# path/to/file.py``."""
        first = self.code.split("\n", 1)[0]
        match = re.fullmatch(r"# ((?:src|tests)/[\w/.]+\.py)", first)
        return match.group(1) if match else None

    @property
    def body(self) -> str:
        return self.code.split("\n", 1)[1] if self.file else self.code


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return [
        Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M)
    ]


def guide_blocks(lang: str) -> list[Block]:
    return [b for b in blocks(GUIDE) if b.lang == lang]


async def _run(code: str, namespace: dict[str, Any], filename: str) -> None:
    compiled = compile(code, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, namespace)  # noqa: S307 - the documentation's own examples
    if inspect.isawaitable(result):
        await result


def run_snippet(block: Block, namespace: dict[str, Any], path: Path) -> str:
    """Run a block (top-level ``await`` allowed) and check ``print(...)  # expected`` lines."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        anyio.run(_run, block.code, namespace, f"{path.name}:{block.line}")
    printed = out.getvalue()
    for expected in re.findall(r"^\s*print\(.*\)\s+# (.+)$", block.code, re.M):
        assert expected in printed, f"{path.name}:{block.line} printed {printed!r}"
    return printed


# -- the guide ---------------------------------------------------------------------------------


def test_every_guide_block_is_exercised() -> None:
    """A new kind of block needs a test here before it can go into the guide."""
    for block in blocks(GUIDE):
        assert block.lang in {"bash", "text", "toml", "python"}, (
            f"creating-a-provider.md:{block.line}: no test exercises ```{block.lang} blocks"
        )
    assert len(guide_blocks("bash")) == 2
    assert len(guide_blocks("text")) == 1
    assert len(guide_blocks("toml")) == 1


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the guide's ``cookiecutter`` command; returns the generated project."""
    cookiecutter = pytest.importorskip("cookiecutter.main", reason="needs cookiecutter")
    (command,) = [
        line
        for b in guide_blocks("bash")
        for line in b.code.splitlines()
        if line.startswith("cookiecutter ")
    ]
    program, template, *args = shlex.split(command)
    assert (program, template) == ("cookiecutter", "plugin-template")
    assert "--no-input" in args
    context = dict(arg.split("=", 1) for arg in args if "=" in arg)
    out = tmp_path_factory.mktemp("guide")
    project = cookiecutter.cookiecutter(
        str(REPO / template), no_input=True, extra_context=context, output_dir=str(out)
    )
    return Path(project)


@pytest.fixture(scope="module")
def importable(generated: Path) -> Iterator[Path]:
    """The generated package importable and discoverable (a dist-info next to it, as an
    install would leave), without installing anything."""
    meta = tomllib.loads((generated / "pyproject.toml").read_text())["project"]
    src = generated / "src"
    info = src / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n"
    )
    points = meta["entry-points"]["orchestrator.providers"]
    (info / "entry_points.txt").write_text(
        "[orchestrator.providers]\n" + "".join(f"{k} = {v}\n" for k, v in points.items())
    )
    sys.path.insert(0, str(src))
    try:
        yield src
    finally:
        sys.path.remove(str(src))
        for name in [m for m in sys.modules if m.split(".")[0] in set(points.values())]:
            del sys.modules[name]


def test_tree_block_lists_the_generated_files(generated: Path) -> None:
    (tree,) = guide_blocks("text")
    listed = sorted(re.sub(r"^[├└]── ", "", line) for line in tree.code.splitlines()[1:])
    files = sorted(str(p.relative_to(generated)) for p in generated.rglob("*") if p.is_file())
    assert tree.code.splitlines()[0] == f"{generated.name}/"
    assert listed == files


def test_toml_block_matches_the_generated_pyproject(generated: Path) -> None:
    (block,) = guide_blocks("toml")
    shown = tomllib.loads(block.code)
    actual = tomllib.loads((generated / "pyproject.toml").read_text())
    assert shown["project"]["name"] == actual["project"]["name"]
    assert shown["project"]["dependencies"] == actual["project"]["dependencies"]
    assert shown["project"]["entry-points"] == actual["project"]["entry-points"]


def test_file_blocks_are_the_generated_files(generated: Path) -> None:
    files = [b for b in guide_blocks("python") if b.file]
    assert {b.file for b in files} == {
        "src/orchestrator_acme/__init__.py",
        "src/orchestrator_acme/provider.py",
        "tests/test_contract.py",
    }
    for block in files:
        assert block.file is not None
        expected = (generated / block.file).read_text(encoding="utf-8")
        assert block.body == expected, f"the guide's {block.file} differs from the template's"


def test_snippets_run(importable: Path) -> None:
    """The guide's other Python blocks run, in order, against the generated package."""
    namespace: dict[str, Any] = {"__name__": "guide"}
    snippets = [b for b in guide_blocks("python") if not b.file]
    assert len(snippets) == 3
    for block in snippets:
        run_snippet(block, namespace, GUIDE)
    # The xfail example defines a contract class the guard accepts, with its mark.
    contract = namespace["TestContract"]
    marks = contract.test_health_check_true_when_serving.pytestmark
    assert [m.name for m in marks] == ["xfail"]


@pytest.mark.slow
def test_generated_package_commands(generated: Path, importable: Path) -> None:
    """The guide's ``pytest``, ``ruff`` and ``mypy`` pass in the generated package, run here
    without installing (tests/test_docs_shell.py runs the whole block as written, installs
    included)."""
    (_, develop) = guide_blocks("bash")
    commands = develop.code.splitlines()
    assert commands == [
        "cd orchestrator-acme",
        'pip install "../orchestrator-core[testing]"',
        'pip install -e ".[test,lint]"',
        "pytest",
        "ruff check . && ruff format --check .",
        "mypy",
    ]
    env = {"PYTHONPATH": str(importable), "PATH": str(Path(sys.executable).parent)}
    runs = {
        "pytest": [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        "ruff check": [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        "ruff format": [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."],
        "mypy": [sys.executable, "-m", "mypy", "--cache-dir", str(importable.parent / ".mypy")],
    }
    for command in runs:
        result = subprocess.run(
            runs[command], cwd=generated, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"


# -- the hook reference --------------------------------------------------------------------------


def _hookspecs() -> dict[str, Any]:
    return {
        name: fn
        for name, fn in vars(hookspecs).items()
        if inspect.isfunction(fn) and hasattr(fn, "orchestrator_spec")
    }


def _signature(node: ast.FunctionDef) -> str:
    """``name(arg: type, ...) -> type`` as source text, whatever the layout."""
    args = [
        f"{a.arg}: {ast.unparse(a.annotation) if a.annotation else '?'}"
        for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)
    ]
    returns = ast.unparse(node.returns) if node.returns else "?"
    return f"{node.name}({', '.join(args)}) -> {returns}"


def _spec_signature(fn: Any) -> str:
    (node,) = ast.parse(inspect.getsource(fn)).body
    assert isinstance(node, ast.FunctionDef)
    return _signature(node)


def _documented() -> dict[str, tuple[str, str]]:
    """{hook name: (signature, section text)} from the ``## `name` `` sections."""
    text = HOOKS.read_text(encoding="utf-8")
    found = {}
    for match in re.finditer(r"^## `(\w+)`\n(.*?)(?=^## |\Z)", text, re.S | re.M):
        name, section = match.groups()
        code = re.search(r"```python\n(.*?)```", section, re.S)
        assert code, f"hooks.md: `{name}` has no signature block"
        (node,) = ast.parse(code.group(1)).body
        assert isinstance(node, ast.FunctionDef) and node.name == name
        found[name] = (_signature(node), section)
    return found


def test_hookspecs_are_found() -> None:
    assert {"register_providers", "on_request_start"} <= set(_hookspecs())


@pytest.mark.parametrize("name", sorted(_hookspecs()))
def test_hook_is_documented_with_its_signature(name: str) -> None:
    documented = _documented()
    assert name in documented, f"docs/plugins/hooks.md does not document the hook `{name}`"
    signature, section = documented[name]
    assert signature == _spec_signature(_hookspecs()[name]), (
        f"hooks.md shows another signature for `{name}`"
    )
    options = _hookspecs()[name].orchestrator_spec
    for option in ("firstresult", "historic"):
        if options.get(option):
            assert option in section, f"hooks.md must say that `{name}` is {option}"
    assert len(section.split("```")[-1].strip()) > 20, f"say when `{name}` fires"


def test_hook_reference_names_every_builtin_strategy() -> None:
    from orchestrator.strategies import BUILTIN_STRATEGIES

    section = HOOKS.read_text(encoding="utf-8").split("## `register_strategies`")[1]
    section = section.split("\n## ")[0]
    for strategy in BUILTIN_STRATEGIES:
        assert f"`{strategy.name}`" in section, f"hooks.md does not list {strategy.name}"
    assert f"The {_NUMBERS[len(BUILTIN_STRATEGIES)]}\nbuilt-in strategies" in section


_NUMBERS = {6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}


def test_hook_reference_says_where_top_level_await_runs() -> None:
    text = HOOKS.read_text(encoding="utf-8")
    assert "top-level `await`" in text and "asyncio.run(main())" in text


def test_no_documented_hook_is_missing_from_hookspecs() -> None:
    assert set(_documented()) <= set(_hookspecs())


def test_hook_reference_examples_run() -> None:
    python = [b for b in blocks(HOOKS) if b.lang == "python" and not b.code.startswith("def ")]
    assert len(python) == 1
    printed = run_snippet(python[0], {"__name__": "hooks"}, HOOKS)
    assert "Mock response to: Hello" in printed
    (toml,) = [b for b in blocks(HOOKS) if b.lang == "toml"]
    assert tomllib.loads(toml.code)["project"]["entry-points"]["orchestrator.providers"]
    assert {b.lang for b in blocks(HOOKS)} == {"python", "toml"}
