"""Every ```python block of the front-door docs pages runs as written.

Blocks of one page run in order in one namespace (a page is one story), in a scratch
directory holding the example configuration as ``orchestrator.toml``, with made-up
credentials in the environment.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    "index.md",
    "quickstart.md",
    "configuration.md",
    "cli.md",
    "threads-notebooks-bots.md",
    "errors.md",
]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(page: str) -> list[str]:
    return BLOCK.findall((ROOT / "docs" / page).read_text(encoding="utf-8"))


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.usefixtures("no_vendor_credentials")
def test_python_blocks_run(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(ROOT / "examples" / "orchestrator.toml", tmp_path / "orchestrator.toml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIGACHAT_CREDENTIALS", "ZG9jczpkb2Nz")
    monkeypatch.setenv("YC_API_KEY", "AQVN-docs-example")
    monkeypatch.setenv("YC_FOLDER_ID", "b1gdocsfolder")
    namespace: dict[str, object] = {"__name__": f"docs_{page.replace('-', '_')[:-3]}"}
    for number, block in enumerate(python_blocks(page), start=1):
        try:
            exec(compile(block, f"docs/{page}:block{number}", "exec"), namespace)  # noqa: S102
        except Exception as exc:  # pragma: no cover - the failure report
            pytest.fail(f"docs/{page} python block {number} failed: {exc!r}\n{block}")
    capsys.readouterr()


def test_pages_with_code_have_blocks() -> None:
    for page in ("quickstart.md", "configuration.md", "threads-notebooks-bots.md", "errors.md"):
        assert python_blocks(page), page


def test_cli_page_documents_every_command_and_option() -> None:
    from orchestrator.cli import build_parser

    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    for name, sub in commands.choices.items():  # type: ignore[union-attr]
        assert f"## `orchestrator {name}`" in text, name
        for action in sub._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert flag in text, f"{name} {flag} is not documented in docs/cli.md"


def test_trio_example_says_to_install_trio() -> None:
    text = (ROOT / "docs" / "threads-notebooks-bots.md").read_text(encoding="utf-8")
    trio_section = text.split("## trio", 1)[1].split("```python", 1)[0]
    assert "pip install trio" in trio_section


def test_errors_page_documents_every_error() -> None:
    import orchestrator.errors as errors

    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    for name in errors.__all__:
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, BaseException) and name != "TimeoutError":
            assert f"### `{name}`" in text, f"{name} is not documented in docs/errors.md"
            assert name in text.split("## Reference")[0], f"{name} is missing from the tree"
