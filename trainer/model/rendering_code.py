"""The source files that decide a row's tokens: trainer/model/tokens.py and every trainer module it
imports, directly or not, at the top or inside a function.

Both caches of tokenized work key on the content of these files: validation's token counts
(trainer/data/contracts/suites.py: validator_digest) and the prepared training rows
(trainer/train/prepared.py: preparation_key). Found by reading the imports rather than listed by hand,
so a module the chat-template rendering comes to use later is covered without anyone remembering to
add it (a hand-kept list had already missed one). The cost of erring wide: a change to a module
that cannot change tokens (progress lines, say) also makes the next run tokenize again.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # trainer/


@cache
def rendering_code() -> tuple[Path, ...]:
    found: set[Path] = set()
    todo = [PACKAGE / "model" / "tokens.py"]
    while todo:
        path = todo.pop()
        if path in found:
            continue
        found.add(path)
        for name in _imported_names(path):
            todo.extend(_trainer_file(name))
    return tuple(sorted(found))


def _imported_names(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return [name for name in names if name.split(".")[0] == PACKAGE.name]


def _trainer_file(module: str) -> list[Path]:
    """The file of a trainer module or package, with the `__init__.py` of each package above it (run
    on import too); none for a name that is a function or class."""
    parts = module.split(".")
    own = [p for p in (PACKAGE.parent.joinpath(*parts).with_suffix(".py"),) if p.is_file()]
    packages = [PACKAGE.parent.joinpath(*parts[:n], "__init__.py") for n in range(1, len(parts) + 1)]
    if not own and not packages[-1].is_file():
        return []
    return own + [p for p in packages if p.is_file()]
