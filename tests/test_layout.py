"""The house's layout: dependencies run one way, read from every module's imports (ast, lazy ones included).

build.py/kr_cfn/cli.py -> stacks/* -> kr_cfn building blocks; deploy, cost, diagram and SARIF sit side by side
above the foundations that read built templates (kr_cfn.built, kr_cfn.trees, kr_cfn.errors, kr_cfn.aws).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENT = ("kr_cfn.deploy", "kr_cfn.changes", "kr_cfn.operations")
"""The deployment code: argument wiring, the change-set engine, day-two operations."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    files = [*(ROOT / "kr_cfn").rglob("*.py"), *(ROOT / "stacks").rglob("*.py"), ROOT / "build.py"]
    return {_module_name(p): p for p in files if p.is_file()}


MODULES = _modules()


def _type_only(tree: ast.Module) -> set[int]:
    """Ids of the import nodes under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    guarded = [n for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)]
    return {id(i) for g in guarded for b in g.body for i in ast.walk(b)}


def _imports(name: str, path: Path) -> set[str]:
    """The modules ``name`` imports anywhere in its body, lazy imports included, type-only ones not.

    ``from a import b`` names ``a.b`` when that is a module, else ``a``.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_only(tree)
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return out


IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _violations(importers: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{name} imports {imp}"
        for name, imps in IMPORTS.items()
        if _within(name, importers)
        for imp in imps
        if _within(imp, forbidden)
    )


def test_the_modules_are_found() -> None:
    assert {"kr_cfn.cli", "kr_cfn.built", "kr_cfn.errors", "stacks.bootstrap", "kr_cfn.changes.guard"} <= set(MODULES)
    assert "kr_cfn.built" in IMPORTS["kr_cfn.sarif"]  # the walk sees what it must judge


def test_cost_diagram_and_sarif_never_import_deployment() -> None:
    assert _violations(("kr_cfn.cost", "kr_cfn.diagram", "kr_cfn.sarif", "kr_cfn.sarif_sources"), DEPLOYMENT) == []


def test_stacks_never_import_deployment_cost_or_diagram() -> None:
    assert _violations(("stacks",), (*DEPLOYMENT, "kr_cfn.cost", "kr_cfn.diagram")) == []


def test_deployment_cost_diagram_and_forecast_never_import_stacks() -> None:
    readers = (*DEPLOYMENT, "kr_cfn.cost", "kr_cfn.diagram", "kr_cfn.changes.forecast")
    assert _violations(readers, ("stacks",)) == []


def test_foundations_import_nothing_above_them() -> None:
    foundations = ("kr_cfn.built", "kr_cfn.errors", "kr_cfn.aws", "kr_cfn.trees")
    assert _violations(foundations, (*DEPLOYMENT, "kr_cfn.cost", "kr_cfn.diagram", "kr_cfn.sarif", "stacks")) == []


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (empty when there is none), by depth-first search."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_no_import_cycles_among_kr_cfn_modules() -> None:
    graph = {
        name: {i for i in imps if i in MODULES and i.startswith("kr_cfn") and i != name}
        for name, imps in IMPORTS.items()
        if name.startswith("kr_cfn")
    }
    assert _cycle(graph) == []


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 100


def _too_long(paths: dict[str, Path]) -> list[str]:
    """Modules over MAX_MODULE_LINES and functions over MAX_FUNCTION_LINES lines (``name:lines``)."""
    out: list[str] = []
    for name, path in sorted(paths.items()):
        text = path.read_text(encoding="utf-8")
        if (count := len(text.splitlines())) > MAX_MODULE_LINES:
            out.append(f"{name}:{count}")
        functions = [n for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        out += [
            f"{name}.{f.name}:{length}"
            for f in functions
            if (length := (f.end_lineno or f.lineno) - f.lineno + 1) > MAX_FUNCTION_LINES
        ]
    return out


def test_no_module_over_800_lines_and_no_function_over_100() -> None:
    assert _too_long(MODULES) == []


def test_the_length_check_finds_a_long_function(tmp_path: Path) -> None:
    long = tmp_path / "long.py"
    long.write_text("def f() -> None:\n" + "    pass\n" * MAX_FUNCTION_LINES, encoding="utf-8")
    assert _too_long({"long": long}) == [f"long.f:{MAX_FUNCTION_LINES + 1}"]
