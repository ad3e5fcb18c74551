"""The one YAML reader for everything we parse as settings: config files, `--set` values, the
settings files inside adapters, checkpoints and launch specs. Each of these may come from elsewhere,
so each is bounded, and anything past a bound is one SettingsError line, never a traceback or a
machine out of memory:

- size: MAX_BYTES of text (a settings file is a few KB);
- expansion: MAX_VALUES values after aliases are expanded (a 359-byte "billion laughs" file of
  nested anchors once took 71 s and ended in MemoryError);
- nesting: MAX_DEPTH levels (deeper input overflowed the parser's recursion);
- duplicate keys are refused, not resolved silently as "last one wins";
- the text must be UTF-8.
PyYAML's SafeLoader builds only plain types (no Python objects); this adds the bounds.
"""

from __future__ import annotations

from typing import Any

import yaml

from trainer.errors import SettingsError

MAX_BYTES = 1 * 2**20
MAX_VALUES = 10_000
MAX_DEPTH = 50


class _BoundedLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: SafeLoader's own error says so
                break
            if duplicate:
                raise SettingsError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str | bytes, where: str) -> Any:
    """Parse `text` within the bounds above; `where` names the source in the error line."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SettingsError(f"{where}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:  # a command-line argument with bytes that are not UTF-8
        raise SettingsError(f"{where}: not UTF-8 text (character {exc.start + 1})") from None
    if size > MAX_BYTES:
        raise SettingsError(f"{where}: larger than {MAX_BYTES // 2**20} MiB; a settings file is a few KB")
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader subclass: plain types only
    except SettingsError as exc:
        raise SettingsError(f"{where} {exc}") from None
    except RecursionError:
        raise SettingsError(f"{where}: nested too deeply (more than {MAX_DEPTH} levels)") from None
    except ValueError as exc:  # an integer of more than 4,300 digits: Python's bound on int(text)
        raise SettingsError(f"{where}: {str(exc).splitlines()[0]}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise SettingsError(f"{where}{line}: malformed YAML ({problem}); fix it and retry") from None
    _check_expansion(data, where)
    return data


def _check_expansion(data: Any, where: str) -> None:
    """Walk what aliases expand to, counting every value and level, without building anything."""
    count = 0
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise SettingsError(
                f"{where}: expands to more than {MAX_VALUES:,} values (YAML anchors and aliases?); "
                "a settings file holds a few dozen"
            )
        if depth > MAX_DEPTH:
            raise SettingsError(f"{where}: nested too deeply (more than {MAX_DEPTH} levels)")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for pair in value.items() for v in pair)
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
