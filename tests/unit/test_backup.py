import json
import uuid

import fsspec
import pytest

from trainer.errors import BackupError
from trainer.storage.backup import backup, verify


def _sources(tmp_path):
    adapter = tmp_path / "adapter"
    (adapter / "nested").mkdir(parents=True, exist_ok=True)
    (adapter / "adapter_model.safetensors").write_bytes(b"\x00weights" * 100)
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "nested" / "tokenizer.json").write_text("{}")
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"rows": 3}))
    return {"adapter": adapter, "data": report}


@pytest.mark.parametrize("scheme", ["local", "memory"])
def test_backup_round_trip_and_corruption_is_detected(tmp_path, scheme):
    destination = str(tmp_path / "backups") if scheme == "local" else f"memory://backups-{uuid.uuid4().hex}"
    manifest = backup(_sources(tmp_path), destination, "run-1", {"model": "m"})
    assert set(manifest.files) == {
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "adapter/nested/tokenizer.json",
        "data/report.json",
    }
    assert verify(manifest.location).files == manifest.files
    fs, root = fsspec.core.url_to_fs(manifest.location)
    assert not fs.exists(root + ".partial")
    # A second backup of the same run (a retry) verifies instead of copying again.
    assert backup(_sources(tmp_path), destination, "run-1").files == manifest.files
    with fs.open(f"{root}/adapter/adapter_model.safetensors", "wb") as fh:
        fh.write(b"tampered")
    with pytest.raises(BackupError, match="incomplete backup, 1 changed: adapter/adapter_model.safetensors"):
        verify(manifest.location)


def test_verify_refuses_a_folder_without_manifest(tmp_path):
    with pytest.raises(BackupError, match="no MANIFEST.json"):
        verify(str(tmp_path))


def test_missing_file_and_unfinished_backup_are_never_good(tmp_path):
    destination = str(tmp_path / "backups")
    manifest = backup(_sources(tmp_path), destination, "run-2")
    assert (tmp_path / "backups" / "run-2" / "MANIFEST.json").is_file() and manifest.format == 2
    (tmp_path / "backups" / "run-2" / "adapter" / "nested" / "tokenizer.json").unlink()
    with pytest.raises(BackupError, match="incomplete backup, 1 missing: adapter/nested/tokenizer.json"):
        verify(manifest.location)
    # A retry of the same run's backup finds it incomplete and copies it again.
    assert verify(backup(_sources(tmp_path), destination, "run-2").location).files == manifest.files
    # A copy that never got its MANIFEST.json (killed midway) is unfinished, not a backup.
    (tmp_path / "backups" / "run-2" / "MANIFEST.json").unlink()
    with pytest.raises(BackupError, match="no MANIFEST.json; not a backup, or an unfinished one"):
        verify(manifest.location)
    assert backup(_sources(tmp_path), destination, "run-2").files == manifest.files


def test_manifest_records_size_and_hides_url_credentials(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sentinel-secret-value")
    manifest = backup(
        _sources(tmp_path), f"memory://backups-{uuid.uuid4().hex}", "run-3", {"note": "key sentinel-secret-value"}
    )
    entry = manifest.files["adapter/adapter_model.safetensors"]
    assert entry["bytes"] == 800 and entry["sha256"] == hashlib.sha256(b"\x00weights" * 100).hexdigest()
    fs, root = fsspec.core.url_to_fs(manifest.location)
    text = fs.cat_file(f"{root}/MANIFEST.json").decode()
    assert "sentinel-secret-value" not in text and json.loads(text)["metadata"]["note"] == "key ***"


def test_a_transient_copy_error_is_retryable_and_the_retry_starts_clean(tmp_path, monkeypatch):
    from fsspec.implementations.memory import MemoryFileSystem

    from tasks.retry import is_transient as is_retryable

    real_put, calls = MemoryFileSystem.put_file, []

    def flaky_put(self, lpath, rpath, **kwargs):
        calls.append(rpath)
        if len(calls) == 2:  # the second file of the first attempt
            raise ConnectionError("connection reset by peer")
        return real_put(self, lpath, rpath, **kwargs)

    monkeypatch.setattr(MemoryFileSystem, "put_file", flaky_put)
    destination = f"memory://backups-{uuid.uuid4().hex}"
    with pytest.raises(ConnectionError) as info:
        backup(_sources(tmp_path), destination, "run-4")
    assert is_retryable(info.value)  # the backup task's retry condition
    with pytest.raises(BackupError, match="no MANIFEST.json"):
        verify(f"{destination}/run-4")  # the half-copied folder is never a backup
    manifest = backup(_sources(tmp_path), destination, "run-4")  # what the task's retry does
    assert verify(manifest.location).files == manifest.files


def test_a_backup_that_cannot_rebuild_a_model_does_not_verify(tmp_path):
    """Verify proves a backup can rebuild a model: a manifest of no files, or one without the adapter,
    is refused however well its (zero) files hash."""
    good = backup(_sources(tmp_path), str(tmp_path / "backups"), "run-5")
    manifest_path = tmp_path / "backups" / "run-5" / "MANIFEST.json"
    data = json.loads(manifest_path.read_text())
    for drop in (list(data["files"]), ["adapter/adapter_config.json"], ["adapter/adapter_model.safetensors"]):
        edited = {**data, "files": {k: v for k, v in data["files"].items() if k not in drop}}
        manifest_path.write_text(json.dumps(edited))
        with pytest.raises(BackupError, match=r"MANIFEST.json lists no adapter/.*not a backup a model can be restored"):
            verify(good.location)
