"""The package's shape: no import cycles, features layered on a core that imports none
of them, and implementation modules private."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1] / "src" / "llmrouter"
FEATURES = {"task", "cost", "learn", "ab", "multimodal", "models", "testing", "config", "serve"}
SHARED = {"errors", "spec", "record", "_sqlite", "_callbacks", "_llm_chat", "_redact", "_tokens"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every llmrouter module ``path`` imports, at any depth (functions included),
    except under ``if TYPE_CHECKING:`` (annotations only, never executed)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("llmrouter"):
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("llmrouter")}
    return found


def graph() -> nx.DiGraph:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    g = nx.DiGraph()
    for name, path in modules.items():
        g.add_node(name)
        for target in imports_of(path):
            if target in modules and target != name:
                g.add_edge(name, target)
    return g


def test_no_import_cycles() -> None:
    g = graph()
    # a package's __init__ re-exporting its own modules is not a cycle of substance
    inits = [(a, b) for a, b in g.edges if b.startswith(a + ".")]
    g.remove_edges_from(inits)
    assert list(nx.simple_cycles(g)) == []


def test_the_core_and_shared_modules_import_no_feature() -> None:
    g = graph()
    low = [n for n in g if n.split(".")[1:2] and n.split(".")[1] in {"core", "resilience"} | SHARED]
    offenders = {
        (a, b)
        for a in low
        for b in g.successors(a)
        if len(b.split(".")) > 1 and b.split(".")[1] in FEATURES
    }
    assert offenders == set()


def test_the_executor_never_imports_the_router_base() -> None:
    g = graph()
    for module in ("llmrouter.core._execution", "llmrouter.core._drivers", "llmrouter.core._types"):
        assert "llmrouter.core._router" not in nx.descendants(g, module), module


def test_implementation_modules_are_private() -> None:
    public_modules = {
        "llmrouter",
        "llmrouter.cli",
        "llmrouter.classify",
        "llmrouter.demo",
        "llmrouter.errors",
        "llmrouter.record",
        "llmrouter.spec",
        "llmrouter.testing.fixtures",
    }
    packages = {module_name(p) for p in ROOT.rglob("__init__.py")}
    leaked = {
        name
        for name in (module_name(p) for p in ROOT.rglob("*.py"))
        if name not in packages | public_modules and not name.rsplit(".", 1)[-1].startswith("_")
    }
    assert leaked == set()
