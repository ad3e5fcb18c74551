"""Settings from their sources, later ones winning: preset -> YAML file -> `--set key=value` flags.

A bad setting becomes one `SettingsError` line naming the setting and what is allowed, before
torch or any service is touched.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from trainer.config.presets import preset_values
from trainer.config.settings import Settings
from trainer.config.yaml_reader import MAX_BYTES, load_yaml
from trainer.errors import SettingsError


def parse_set_flags(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values are read as YAML scalars so `1e-4`, `true`, `none`, `[a, b]` work."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SettingsError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set learning_rate=5e-5")
        try:
            values[key] = load_yaml(raw, f"--set {key}") if raw.strip() else None
        except SettingsError as exc:
            if "malformed YAML" not in str(exc):
                raise  # past a bound: say so
            values[key] = raw  # not YAML: the text as typed
        # YAML reads 1e-4 as a string (it wants 1.0e-4); numbers are what users mean.
        if isinstance(values[key], str) and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", values[key]):
            values[key] = float(values[key])
    return values


def read_yaml_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise SettingsError(f"--config {path}: file not found")
    if not path.is_file():  # a folder, a FIFO (reading it would block), a device
        raise SettingsError(f"--config {path}: not a regular file")
    if path.stat().st_size > MAX_BYTES:  # before reading it
        raise SettingsError(f"--config {path}: larger than {MAX_BYTES // 2**20} MiB; a settings file is a few KB")
    data = load_yaml(path.read_bytes(), f"--config {path}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"--config {path}: expected a mapping of setting: value, got {type(data).__name__}")
    odd = [key for key in data if not isinstance(key, str)]
    if odd:
        raise SettingsError(f"--config {path}: {odd[0]!r} is not a setting name (names are text)")
    return data


def _format_validation_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "settings"
    kind = err["type"]
    if kind == "extra_forbidden":
        known = ", ".join(Settings.model_fields)
        return f"unknown setting {loc!r}; known settings: {known}"
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "literal_error" and loc == "quantization_rank":
        msg = "must be 2, 4, 8 or none (4 = NF4 QLoRA, recommended)"
    got = err.get("input")
    got_text = f" (got {got!r})" if got is not None and not isinstance(got, dict) and kind != "value_error" else ""
    if msg.startswith(f"{loc}:") or not err["loc"]:  # model-level checks name their setting first
        return msg
    return f"{loc}: {msg}{got_text}"


def build_settings(values: dict[str, Any]) -> Settings:
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise SettingsError(_format_validation_error(exc)) from None


def load_settings(
    preset: str | None = None,
    config_file: Path | None = None,
    overrides: list[str] | None = None,
) -> Settings:
    """preset -> YAML file -> --set flags, later ones winning. No arguments at all means `demo`."""
    if preset is None and config_file is None:
        preset = "demo"
    return build_settings(settings_values(preset, config_file, overrides))


def settings_values(
    preset: str | None = None,
    config_file: Path | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """The values of preset -> YAML file -> --set flags, not yet validated (a command may add its own
    flags on top before `build_settings`)."""
    values: dict[str, Any] = {}
    if preset is not None:
        values.update(preset_values(preset))
    if config_file is not None:
        file_values = read_yaml_file(config_file)
        if "preset" in file_values:  # a YAML file may start from a preset and override it
            values = {**preset_values(str(file_values.pop("preset"))), **values}
        values.update(file_values)
    values.update(parse_set_flags(overrides or []))
    return values
