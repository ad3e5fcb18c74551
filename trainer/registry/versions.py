"""Registered versions and their aliases: lookups, tags, and the version a run already registered."""

from __future__ import annotations

from typing import Any

from trainer.config import state
from trainer.redact import redact
from trainer.registry.client import client


def set_version_tags(name: str, version: str, tags: dict[str, Any]) -> None:
    c = client()
    for key, value in tags.items():
        c.set_model_version_tag(name, version, key, redact(str(value)))


def model_version(name: str, version: str):
    """The ModelVersion (tags, aliases, run id); SettingsError naming the model when it is not there."""
    from mlflow.exceptions import MlflowException

    from trainer.errors import SettingsError

    try:
        return client().get_model_version(name, str(version))
    except MlflowException:
        raise SettingsError(
            f"{name} version {version}: not in the model registry at {redact(state.tracking_uri())}"
        ) from None


def model_versions(name: str, limit: int | None = None) -> list:
    """The newest `limit` versions of `name` (all by default), newest first, with their aliases
    (search results leave aliases out, so each is read again)."""
    c = client()
    found = sorted(c.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version), reverse=True)[:limit]
    return [c.get_model_version(name, str(v.version)) for v in found]


def versions_of_run(run_id: str) -> list:
    """The registered versions logged from `run_id` (any model name), oldest first, with aliases."""
    from mlflow.exceptions import MlflowException

    c = client()
    try:
        found = sorted(c.search_model_versions(f"run_id = '{run_id}'"), key=lambda v: int(v.version))
    except MlflowException:
        return []
    return [c.get_model_version(v.name, str(v.version)) for v in found]


def get_alias_version(name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def set_alias(name: str, alias: str, version: str) -> None:
    client().set_registered_model_alias(name, alias, version)


def alias_is_unset(name: str, alias: str) -> bool:
    """True when the registered model does not exist or has no such alias (a model not trained
    yet); any other failure (an unreachable server) raises, so it is never taken for 'unset'."""
    from mlflow.exceptions import MlflowException

    try:
        client().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        message = str(exc.message).lower()
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return True
        if exc.error_code == "INVALID_PARAMETER_VALUE" and "alias" in message and "not found" in message:
            return True
        raise
    return False


def find_restored_version(name: str, location: str, adapter_sha256: str) -> str | None:
    """The version a previous `restore --register` of this backup created, if any."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client().search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    for v in sorted(versions, key=lambda v: int(v.version)):
        if v.tags.get("restored_from") == redact(location) and v.tags.get("adapter_sha256") == adapter_sha256:
            return str(v.version)
    return None


def find_version_for_run(name: str, run_id: str) -> str | None:
    """The version already registered from `run_id`, if any (what makes registration idempotent)."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client().search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException:
        return None
    return str(min(int(v.version) for v in versions)) if versions else None
