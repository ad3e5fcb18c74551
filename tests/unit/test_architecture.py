"""The house's rules, checked on the code: arrows point down, no import cycles (imports inside
functions included), the library never imports Prefect, small modules, and docs/architecture.md
names every module and every CLI command."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAYERS = ("flows", "tasks", "trainer")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for layer in LAYERS for p in sorted((REPO / layer).rglob("*.py"))}


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every project module `path` imports, at any depth (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, known) - {name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


def test_no_import_cycle_anywhere():
    assert _cycles(_graph()) == []


def test_arrows_point_down_and_the_library_never_imports_prefect():
    graph = _graph()
    for name, targets in graph.items():
        layer = name.split(".")[0]
        below = LAYERS[LAYERS.index(layer) :]
        assert all(t.split(".")[0] in below for t in targets), f"{name} imports upwards: {sorted(targets)}"
    for name, path in _modules().items():
        if name.startswith("trainer"):
            assert not re.search(r"^\s*(from|import) prefect\b", path.read_text(encoding="utf-8"), re.M), name


def test_small_modules_and_sub_packages():
    for path in _modules().values():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= 400, f"{path.relative_to(REPO)} has {lines} lines (at most 400)"
    trainer = REPO / "trainer"
    packages = [p for p in trainer.iterdir() if (p / "__init__.py").is_file()]
    loose = [p for p in trainer.glob("*.py") if p.name != "__init__.py"]
    assert len(packages) >= 4 and len(loose) <= 4, (packages, loose)


def _documented_paths(tree: str) -> set[str]:
    """Paths the doc's tree names: a line starting with `NAME/` opens a folder (nested by indent),
    the `*.py` words at the start of a line are files in the innermost open folder."""
    folders: list[tuple[int, str]] = []
    paths = set()
    for line in tree.splitlines():
        words = line.split()
        if not words or words[0].startswith(("│", "```")):
            continue
        indent = len(line) - len(line.lstrip())
        if words[0].endswith("/"):
            folders = [(i, f) for i, f in folders if i < indent] + [(indent, words[0])]
            continue
        folders = [(i, f) for i, f in folders if i < indent]
        for word in words:
            if not word.endswith(".py"):
                break
            paths.add("".join(f for _, f in folders) + word)
    return paths


def test_architecture_doc_names_every_module_and_command():
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    start = doc.index("```")
    tree = doc[start : doc.index("```", start + 3)]
    documented = _documented_paths(tree)
    modules = [str(p.relative_to(REPO)) for p in _modules().values() if p.name != "__init__.py"]
    assert [m for m in modules if m not in documented] == [], "docs/architecture.md's tree misses these modules"
    assert [d for d in documented if d not in modules] == [], "docs/architecture.md names modules that do not exist"
    from flows.cli import app

    commands = [c.name or c.callback.__name__ for c in app.registered_commands]
    cli_lines = tree[tree.index("cli/") : tree.index("tasks/")]
    assert [c for c in commands if not re.search(rf"\b{c}\b", cli_lines)] == [], "a CLI command is not in the doc"


def test_the_product_reads_no_test_only_environment_variable():
    """Fault injection lives in tests/faults/: no product module names a variable that exists only for
    tests (a stray one in a user's shell could crash or SIGKILL a real run). The product's own
    variables are documented; the libraries' (HF_*, MLFLOW_*, PREFECT_*, torchrun's) are theirs."""
    ours = set()
    for layer in LAYERS:
        for path in (REPO / layer).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            ours |= set(re.findall(r"LLM_TRAINER_[A-Z_]+", text))
            assert "TEST_FAULT" not in text and "CrashForTesting" not in text, path
    assert ours == {"LLM_TRAINER_HOME"}
