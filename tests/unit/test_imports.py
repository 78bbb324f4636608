"""The engine's import rules, read from the source (every import, also inside functions):
no circles; the layers below the run never import it; source modules are siblings."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parents[2] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "ingest").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code (absolute names)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from ingest.lake import raw` imports a module
                child = f"{node.module}.{alias.name}"
                found.add(child if child in MODULES else node.module)
    return found


GRAPH = {
    name: {m for m in imports_of(path) if m in MODULES} - {name} for name, path in MODULES.items()
}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_the_rule_reader_sees_function_level_imports() -> None:
    # the crawl imports these at its top; cli imports its commands' modules lazily
    assert {"ingest.sources", "ingest.lake"} <= GRAPH["ingest.run.crawl"]
    assert "ingest.lake.maintain" in GRAPH["ingest.cli.commands"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles() -> None:
    assert _cycles(GRAPH) == []


RUN_AND_ABOVE = (
    "ingest.run",
    "ingest.pipeline",
    "ingest.cli",
    "ingest.reextract",
)


@pytest.mark.parametrize("layer", ["ingest.sources", "ingest.lake", "ingest.net", "ingest.store"])
def test_lower_layers_never_import_the_run_the_cli_or_airflow(layer: str) -> None:
    assert any(name == layer or name.startswith(layer + ".") for name in MODULES), layer
    offenders = {
        name: sorted(
            m for m in imports_of(MODULES[name]) if m.startswith((*RUN_AND_ABOVE, "airflow"))
        )
        for name in MODULES
        if name == layer or name.startswith(layer + ".")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_source_modules_never_import_each_other() -> None:
    """A new kind of source is one module plus one registry line (ingest.sources.detect)."""
    siblings = {"ingest.sources.rss", "ingest.sources.jsonfeed", "ingest.sources.sitemap"}
    assert siblings <= set(MODULES)
    for name in siblings:
        assert GRAPH[name] & siblings == set(), name


def _engine_import(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        return any(alias.name.startswith("ingest") for alias in node.names)
    return isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ingest")


def hidden_imports(path: Path) -> list[int]:
    """Lines of engine imports inside functions (or any block below the module's top)."""
    tree = ast.parse(path.read_text("utf-8"))
    top = {id(node) for node in tree.body}
    return [n.lineno for n in ast.walk(tree) if _engine_import(n) and id(n) not in top]


@pytest.mark.parametrize("layer", ["ingest.lake", "ingest.sources", "ingest.run"])
def test_layers_import_the_engine_at_the_top(layer: str) -> None:
    """An import hidden in a function is how a circle gets dodged instead of removed (the
    CLI's lazy imports are deliberate: each command loads only what it needs)."""
    assert hidden_imports(MODULES["ingest.cli.commands"])  # the reader finds them where they are
    hidden = {
        name: lines
        for name, path in MODULES.items()
        if (name == layer or name.startswith(layer + ".")) and (lines := hidden_imports(path))
    }
    assert hidden == {}


def test_nothing_imports_dev_tooling_but_the_demo_command() -> None:
    """dev/ (demo publisher, embedded S3) is not the engine's: only `ingest demo` loads it,
    inside the command, so running and importing the engine never needs it."""
    users = {name for name, path in MODULES.items() if any(
        m.startswith("newsflow_dev") for m in imports_of(path))}  # fmt: skip
    assert users == {"ingest.cli.commands"}
    top = {
        m
        for node in ast.parse(MODULES["ingest.cli.commands"].read_text("utf-8")).body
        if isinstance(node, ast.ImportFrom | ast.Import)
        for m in (
            [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        )
    }
    assert not any((m or "").startswith("newsflow_dev") for m in top)


# What the `ingest` program loads before it knows its command must stay light: `ingest
# --help` answers from it, and `ingest run` starts its extraction workers' forkserver right
# after it, so every heavy import here delays the first page.
HEAVY = ("trafilatura", "lxml", "pyarrow", "deltalake", "boto3", "courlan", "urllib3", "numpy")


def test_the_program_loads_no_heavy_library_before_its_command_runs() -> None:
    probe = f"import sys, ingest.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == "[]"
