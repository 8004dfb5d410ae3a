"""The import rules of ARCHITECTURE.md, read from the source with ``ast``.

Each module of ``salmonn_agent`` belongs to a layer, and may import only the layers its rule
lists (every import counts, also those inside functions or under ``TYPE_CHECKING``: what a
module imports is what it knows). Module-level imports must not form a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "salmonn_agent"

ALLOWED = {
    "base": {"base"},
    "model": {"base", "model"},
    "stream": {"base", "stream"},
    "mini": {"base", "model", "mini"},
    "registry": {"base", "model", "mini", "registry"},
    "training": {"base", "model", "training"},
    "chat": {"base", "model", "registry", "chat"},
    "agent": {"base", "stream", "chat", "registry", "agent"},
    "server": {"base", "model", "stream", "chat", "registry", "agent", "server"},
}
"""Which layers a layer may import. The commands (``cli``, ``*/commands.py``) and the lazy
top-level API wire the layers together and may import any of them."""

NO_LANGCHAIN = {"base", "model", "stream", "mini", "registry", "training"}
"""Layers that know nothing of LangChain (or LangGraph)."""


def _modules() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = _modules()


def layer(module: str) -> str | None:
    """The layer of a ``salmonn_agent`` module; None for the commands and the top-level API."""
    parts = module.split(".")[1:]
    if not parts or parts[0] in ("_lazy", "cli") or parts[-1] == "commands":
        return None
    if parts[0] in ("errors", "audio", "config", "downloads", "sound_tags"):
        return "base"
    if parts[0] == "chat_model":
        return "chat"
    return parts[0]


def _imports(module: str, nodes: list[ast.stmt] | ast.AST, *, top_level: bool) -> set[str]:
    """Absolute names of the modules imported by ``nodes`` (only module-level ones with
    ``top_level``: not in functions, not under ``if TYPE_CHECKING``)."""
    is_package = MODULES[module].name == "__init__.py"
    found: set[str] = set()
    if top_level:
        stack = list(nodes.body if isinstance(nodes, ast.Module) else nodes)
    else:
        stack = [nodes]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: None if is_package else -1]
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names if f"{name}.{alias.name}" in MODULES)
        elif top_level:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    stack.extend(getattr(node, field, []))
            elif isinstance(node, ast.ExceptHandler):
                stack.extend(node.body)
        else:
            stack.extend(ast.iter_child_nodes(node))
    return found


def _tree(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text(encoding="utf-8"))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_only_the_layers_below(module: str) -> None:
    imported = _imports(module, _tree(module), top_level=False)
    assert not {name.split(".")[0] for name in imported} & {"devkit", "tools", "tests"}, (
        f"{module} imports the development kit, a tool or a test: the package never does"
    )
    own = layer(module)
    if own is None:
        return
    if own in NO_LANGCHAIN:
        bad = sorted(name for name in imported if name.split(".")[0] in ("langchain", "langchain_core", "langgraph"))
        assert not bad, f"{module} ({own}) imports {bad}: only the chat and agent layers know LangChain"
    wrong = sorted(
        name for name in imported
        if name.startswith("salmonn_agent.") and layer(name) is not None and layer(name) not in ALLOWED[own]
    )
    commands = sorted(name for name in imported if name.startswith("salmonn_agent.") and layer(name) is None
                      and name != "salmonn_agent._lazy")
    assert not wrong, f"{module} ({own}) imports {wrong}; the {own} layer may import {sorted(ALLOWED[own])}"
    assert not commands, f"{module} ({own}) imports the commands or the top-level API: {commands}"


def test_no_import_cycle_at_module_level() -> None:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        ancestors = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        deps: set[str] = set()
        for name in _imports(module, _tree(module), top_level=True):
            parts = name.split(".")
            # importing a.b.c runs a and a.b first, except the packages this module is inside of
            deps.update(p for p in (".".join(parts[:i]) for i in range(1, len(parts) + 1))
                        if p in MODULES and p != module and p not in ancestors)
        graph[module] = deps

    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_every_module_has_a_layer_or_is_wiring() -> None:
    for module in MODULES:
        own = layer(module)
        assert own is None or own in ALLOWED, f"{module}: no rule for the layer {own!r}; add it to ALLOWED"
