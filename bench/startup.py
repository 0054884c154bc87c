"""Start-up cost: importing the library and running the CLI, each in a fresh interpreter.

- import rows time the statement inside ``python -c`` (``perf_counter`` around it), so the
  interpreter's own start-up is excluded; ``dependencies`` imports exactly the third-party
  packages that ``from orchestrator import Router`` ends up loading (found at run time);
- CLI rows are the wall time of the whole process (``orchestrator providers``, ``--help``,
  with both plugins installed), next to ``python -c pass``;
- ``-X importtime`` gives the orchestrator modules with the largest own (self) import time.

Variants are interleaved run by run; the figures are medians with min … max. Run alone:
``python bench/startup.py [--repeat N]``. With ``PYTHONDONTWRITEBYTECODE`` set and no
bytecode cached every process compiles what it imports, which inflates every figure (the
whole ``orchestrator providers`` process ~1.5x): warned about on stderr.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from _common import Spread, Table

_FIND_DEPS = """
import sys
before = set(sys.modules)
from orchestrator import Router
roots = {name.partition('.')[0] for name in set(sys.modules) - before}
own = {'orchestrator', 'orchestrator_gigachat', 'orchestrator_yandexgpt'}
third = sorted(r for r in roots if r not in sys.stdlib_module_names and r not in own
               and not r.startswith('_'))
print(','.join(third))
"""


def _timed(code: str) -> float:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import time; t=time.perf_counter(); {code}; print(time.perf_counter()-t)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out) * 1000


def _wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True)
    return (time.perf_counter() - start) * 1000


def dependencies() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _FIND_DEPS], capture_output=True, text=True, check=True
    )
    return [name for name in out.stdout.strip().split(",") if name]


def own_import_items(top: int = 5) -> list[tuple[str, float]]:
    """The orchestrator modules with the largest self import time (ms), from -X importtime."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "from orchestrator import Router"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    items = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "self" in line:
            continue
        self_us, _, name = line.removeprefix("import time:").split("|")
        name = name.strip()
        if name.startswith("orchestrator"):
            items.append((name, int(self_us) / 1000))
    return sorted(items, key=lambda item: -item[1])[:top]


def measure(repeat: int) -> tuple[dict[str, Spread], list[str], list[tuple[str, float]]]:
    deps = dependencies()
    cli = shutil.which("orchestrator", path=str(Path(sys.executable).parent)) or "orchestrator"
    env_python = [sys.executable, "-c", "pass"]
    jobs: dict[str, Callable[[], float]] = {
        "import orchestrator": lambda: _timed("import orchestrator"),
        "from orchestrator import Router": lambda: _timed("from orchestrator import Router"),
        "dependencies": lambda: _timed("import " + ", ".join(deps)),
        "python -c pass": lambda: _wall(env_python),
        "orchestrator --help": lambda: _wall([cli, "--help"]),
        "orchestrator providers": lambda: _wall([cli, "providers"]),
    }
    os.environ.setdefault("NO_COLOR", "1")
    results = {name: Spread() for name in jobs}
    for _ in range(repeat):
        for name, job in jobs.items():
            results[name].add(job())
    return results, deps, own_import_items()


def table(results: dict[str, Spread], deps: list[str]) -> Table:
    router, base = results["from orchestrator import Router"], results["dependencies"]
    over = router.median - base.median
    out = Table("Start-up (ms; median of runs, min … max)", ["time"])
    out.add(
        "`import orchestrator` (lazy: no model, no HTTP client)",
        results["import orchestrator"].text(),
    )
    out.add(
        "`from orchestrator import Router`",
        router.text(),
        target=f"≤ dependencies + 30 ms (now + {over:.0f} ms)",
        ok=over <= 30,
    )
    out.add(f"its dependencies alone: `import {', '.join(deps)}`", base.text())
    out.add("`python -c pass` (interpreter start-up, reference)", results["python -c pass"].text())
    for name in ("orchestrator --help", "orchestrator providers"):
        out.add(
            f"`{name}` (whole process)",
            results[name].text(),
            target="≤ 150 ms",
            ok=results[name].median <= 150,
        )
    return out


def _bytecode_warning() -> str | None:
    if not sys.flags.dont_write_bytecode:
        return None
    import importlib.util

    import orchestrator

    cached = importlib.util.cache_from_source(orchestrator.__file__)
    if os.path.exists(cached):
        return None
    return (
        "warning: PYTHONDONTWRITEBYTECODE is set and the orchestrator's bytecode is not "
        "cached: every process compiles its imports, so the figures are inflated; run "
        f"`{Path(sys.executable).name} -m compileall -q <source and site-packages dirs>` "
        "first, or unset it"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="runs of each (default 10)")
    args = parser.parse_args()
    warning = _bytecode_warning()
    if warning:
        print(warning, file=sys.stderr)
    results, deps, own = measure(args.repeat)
    out = table(results, deps)
    out.note = "Largest own import items (`-X importtime`, self): " + ", ".join(
        f"`{name}` {ms:.1f} ms" for name, ms in own
    )
    print(out.markdown())


if __name__ == "__main__":
    main()
