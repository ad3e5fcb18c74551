import json
import uuid

import fsspec
import pytest

from trainer.backup import BackupError, backup, verify


def _sources(tmp_path):
    adapter = tmp_path / "adapter"
    (adapter / "nested").mkdir(parents=True, exist_ok=True)
    (adapter / "adapter_model.safetensors").write_bytes(b"\x00weights" * 100)
    (adapter / "nested" / "tokenizer.json").write_text("{}")
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"rows": 3}))
    return {"adapter": adapter, "data": report}


@pytest.mark.parametrize("scheme", ["local", "memory"])
def test_backup_round_trip_and_corruption_is_detected(tmp_path, scheme):
    destination = str(tmp_path / "backups") if scheme == "local" else f"memory://backups-{uuid.uuid4().hex}"
    manifest = backup(_sources(tmp_path), destination, "run-1", {"model": "m"})
    assert set(manifest.files) == {"adapter/adapter_model.safetensors", "adapter/nested/tokenizer.json", "data/report.json"}
    assert verify(manifest.location).files == manifest.files
    fs, root = fsspec.core.url_to_fs(manifest.location)
    assert not fs.exists(root + ".partial")
    # A second backup of the same run (a retry) verifies instead of copying again.
    assert backup(_sources(tmp_path), destination, "run-1").files == manifest.files
    with fs.open(f"{root}/adapter/adapter_model.safetensors", "wb") as fh:
        fh.write(b"tampered")
    with pytest.raises(BackupError, match="adapter/adapter_model.safetensors is corrupt"):
        verify(manifest.location)


def test_verify_refuses_a_folder_without_manifest(tmp_path):
    with pytest.raises(BackupError, match="no manifest.json"):
        verify(str(tmp_path))
