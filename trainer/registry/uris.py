"""Registry and run URIs (`models:/NAME/3`, `models:/NAME@alias`, `runs:/ID/model`): parsing them,
their lineage, and the local folder of their files.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from trainer.registry.client import client, mlflow_module
from trainer.registry.runs import get_run
from trainer.registry.versions import versions_of_run

REGISTRY_SCHEMES = ("models:/", "runs:/")


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """`models:/name/3` -> (name, "3", None); `models:/name@champion` -> (name, None, "champion")."""
    from trainer.errors import SettingsError

    body = uri[len("models:/") :].strip("/")
    if "@" in body:
        name, _, alias = body.partition("@")
        if name and alias and "/" not in alias:
            return name, None, alias
    else:
        name, _, version = body.partition("/")
        if name and version.isdigit():
            return name, version, None
    raise SettingsError(f"trained_artifact: {uri}: expected models:/NAME/VERSION or models:/NAME@ALIAS")


def resolve_registered(uri: str) -> dict[str, str]:
    """Lineage of a registry or run URI: parent_model, parent_version, parent_run_id (and parent_alias)."""
    from mlflow.exceptions import MlflowException

    from trainer.errors import SettingsError

    c = client()
    if uri.startswith("runs:/"):
        run_id = uri[len("runs:/") :].split("/", 1)[0]
        try:
            get_run(run_id)
        except SettingsError as exc:
            raise SettingsError(f"trained_artifact: {uri}: {exc}") from None
        found = versions_of_run(run_id)
        info = {"parent_run_id": run_id}
        if found:
            info.update(parent_model=found[0].name, parent_version=str(found[0].version))
        return info
    name, version, alias = parse_model_uri(uri)
    try:
        mv = c.get_model_version_by_alias(name, alias) if alias else c.get_model_version(name, version)
    except MlflowException as exc:
        what = f"alias {alias!r}" if alias else f"version {version}"
        raise SettingsError(
            f"trained_artifact: {uri}: {name} has no {what} in the registry ({exc.message.splitlines()[0]})"
        ) from None
    info = {"parent_model": name, "parent_version": str(mv.version), "parent_run_id": mv.run_id or ""}
    if alias:
        info["parent_alias"] = alias
    return info


def model_files(uri: str, download_dir: Path) -> Path:
    """A local folder with the files of a logged model (`models:/...`) or run artifact (`runs:/...`).

    With a local artifact store the registered files are used where they are, without a copy;
    otherwise they are downloaded into `download_dir` (once: a finished download is reused)."""
    from mlflow.exceptions import MlflowException

    from trainer.errors import SettingsError

    if uri.startswith("models:/"):
        name, version, alias = parse_model_uri(uri)
        if alias:
            version = str(client().get_model_version_by_alias(name, alias).version)
        location = client().get_model_version_download_uri(name, version)
        local = _local_path(location)
        if local is not None and local.is_dir():
            return local
    done = Path(download_dir) / ".complete"
    target = Path(download_dir) / "files"
    if done.is_file() and target.is_dir():
        return Path(done.read_text(encoding="utf-8"))
    import shutil

    shutil.rmtree(download_dir, ignore_errors=True)
    target.mkdir(parents=True)
    try:
        local = Path(mlflow_module().artifacts.download_artifacts(artifact_uri=uri, dst_path=str(target)))
    except MlflowException as exc:
        raise SettingsError(f"trained_artifact: {uri} could not be resolved ({exc.message.splitlines()[0]})") from None
    done.write_text(str(local), encoding="utf-8")
    return local


def _local_path(location: str) -> Path | None:
    from urllib.parse import unquote, urlparse

    if location.startswith("file:"):
        return Path(unquote(urlparse(location).path))
    if "://" not in location and ":" not in location.split("/", 1)[0]:
        return Path(location)
    return None


def download_model_adapter(uri: str, download_dir: Path | None = None) -> Path:
    """The adapter folder of a logged model (`models:/name/3`, `models:/name@champion`, `runs:/id/model`)."""
    from trainer.errors import SettingsError

    local = model_files(uri, Path(download_dir or tempfile.mkdtemp(prefix="llm-trainer-artifact-")))
    for adapter in (local / "artifacts" / "adapter", local):
        if (adapter / "adapter_config.json").is_file():
            return adapter
    raise SettingsError(f"trained_artifact: {uri} is not an llm-trainer model (no artifacts/adapter in it)")
