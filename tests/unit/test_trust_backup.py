"""A backup never makes anything outside itself readable or writable, and a backup that does not fit
fails at once, naming the path and the bytes needed, leaving nothing that looks like a backup.

Real filesystems: the local disk, fsspec's memory filesystem with a byte cap, a real 1 MiB tmpfs."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from tasks.retry import is_transient
from tests.cli import Result, invoke
from trainer.errors import BackupEntryError, BackupError, BackupSpaceError
from trainer.storage.backup import MANIFEST, backup, sha256_file, verify
from trainer.storage.restore import restore


def _sources(tmp_path: Path, size: int = 800) -> dict[str, Path]:
    adapter = tmp_path / "src" / "adapter"
    adapter.mkdir(parents=True, exist_ok=True)
    (adapter / "adapter_model.safetensors").write_bytes(os.urandom(size))
    (adapter / "adapter_config.json").write_text("{}")
    return {"adapter": adapter}


def _tamper(backup_dir: Path, relative: str, target: Path) -> None:
    """Add `relative` to the manifest as an entry whose bytes are `target`'s (as an attacker would)."""
    manifest = json.loads((backup_dir / MANIFEST).read_text())
    manifest["files"][relative] = {"sha256": sha256_file(target), "bytes": target.stat().st_size}
    (backup_dir / MANIFEST).write_text(json.dumps(manifest))


@pytest.fixture
def good_backup(tmp_path) -> Path:
    backup(_sources(tmp_path), str(tmp_path / "backups"), "run-1", {"model": "m"})
    return tmp_path / "backups" / "run-1"


@pytest.fixture
def outside(tmp_path) -> Path:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("not part of any backup")
    return secret


def test_manifest_entries_outside_the_backup_are_refused_naming_them(good_backup, outside, tmp_path):
    for entry in (str(outside), "../../outside/secret.txt", "adapter/../../../outside/secret.txt", "file:x"):
        copy = tmp_path / f"case-{uuid.uuid4().hex[:6]}"
        subprocess.run(["cp", "-r", str(good_backup), str(copy)], check=True)
        _tamper(copy, entry, outside)
        with pytest.raises(BackupEntryError, match=r"MANIFEST.json entry .* is not a path inside the backup") as info:
            verify(str(copy))
        assert repr(entry) in str(info.value)
        destination = tmp_path / f"restored-{uuid.uuid4().hex[:6]}"
        with pytest.raises(BackupEntryError):
            restore(str(copy), destination)
        assert not destination.exists()  # nothing was written, not even the files folder


def test_a_symlink_inside_a_backup_is_refused_not_followed(good_backup, outside, tmp_path):
    link = good_backup / "adapter" / "tokenizer.json"
    link.symlink_to(outside)
    _tamper(good_backup, "adapter/tokenizer.json", outside)
    with pytest.raises(BackupEntryError, match=r"adapter/tokenizer.json is a symbolic link inside the backup"):
        verify(str(good_backup))
    # A linked folder on the way is refused too.
    (good_backup / "linked").symlink_to(outside.parent, target_is_directory=True)
    link.unlink()
    manifest = json.loads((good_backup / MANIFEST).read_text())
    del manifest["files"]["adapter/tokenizer.json"]
    manifest["files"]["linked/secret.txt"] = {"sha256": sha256_file(outside), "bytes": outside.stat().st_size}
    (good_backup / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BackupEntryError, match=r"linked/secret.txt is a symbolic link inside the backup"):
        restore(str(good_backup), tmp_path / "restored")
    assert not (tmp_path / "restored" / "files" / "linked").exists()


@pytest.mark.parametrize(
    "reference, needle",
    [
        ({"path": "OUTSIDE", "hub_id": None}, "does not follow from a file inside the backup: pass --base-model"),
        ({"path": "OUTSIDE", "hub_id": "../../etc"}, "does not follow from a file inside the backup"),
        (["not", "an", "object"], "model/base_reference.json in the backup is not a JSON object"),
    ],
)
def test_restore_never_follows_a_base_path_recorded_inside_the_backup(tmp_path, reference, needle):
    """A backup without base weights whose base_reference.json points at a model folder outside it:
    the folder is a real model, yet a restore refuses it unless the user names a base model."""
    outside_model = tmp_path / "outside-model"
    outside_model.mkdir()
    (outside_model / "config.json").write_text('{"model_type": "llama"}')
    (outside_model / "model.safetensors").write_bytes(b"not ours to read")
    sources = _sources(tmp_path)
    recorded = tmp_path / "src" / "base_reference.json"
    if isinstance(reference, dict):
        reference = {k: str(outside_model) if v == "OUTSIDE" else v for k, v in reference.items()}
    recorded.write_text(json.dumps(reference))
    backup({**sources, "model": recorded}, str(tmp_path / "backups"), "run-ref", {"model": "m"})
    destination = tmp_path / "restored"
    with pytest.raises(BackupError, match=re.escape(needle)):
        restore(str(tmp_path / "backups" / "run-ref"), destination)
    assert not (destination / "model").exists()
    assert not any("outside-model" in str(p) for p in destination.rglob("*"))
    # Naming a folder that is not a model is one line too (a reference that is not an object, before that).
    with pytest.raises(BackupError, match=r"--base-model .*: no config.json there|is not a JSON object"):
        restore(str(tmp_path / "backups" / "run-ref"), destination, base_model=tmp_path / "src")


def _cli(*args: str) -> Result:
    return invoke(*args)


def _one_error_line(result: Result, needle: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_restore_and_verify_cli_exit_non_zero_with_one_line_naming_the_entry(good_backup, outside, tmp_path):
    assert _cli("verify", str(good_backup)).returncode == 0  # the untampered backup verifies
    _tamper(good_backup, "../../outside/secret.txt", outside)
    to = tmp_path / "cli-out"
    _one_error_line(_cli("restore", str(good_backup), "--to", str(to)), "'../../outside/secret.txt'")
    assert not to.exists()
    _one_error_line(_cli("verify", str(good_backup)), "'../../outside/secret.txt'")
    # A symbolic link inside the backup, named by the manifest: refused by both, not followed.
    manifest = json.loads((good_backup / MANIFEST).read_text())
    del manifest["files"]["../../outside/secret.txt"]
    (good_backup / MANIFEST).write_text(json.dumps(manifest))
    (good_backup / "adapter" / "linked.json").symlink_to(outside)
    _tamper(good_backup, "adapter/linked.json", outside)
    _one_error_line(_cli("verify", str(good_backup)), "adapter/linked.json is a symbolic link inside the backup")
    _one_error_line(_cli("restore", str(good_backup), "--to", str(to)), "adapter/linked.json is a symbolic link")
    assert not to.exists()


class CappedMemoryFileSystem(MemoryFileSystem):
    """The memory filesystem with a byte budget: past it, writes fail with ENOSPC like a full disk."""

    protocol = "cappedmem"
    budget = 2000
    store: dict = {}  # its own store, not the shared memory:// one
    pseudo_dirs = [""]

    @classmethod
    def _strip_protocol(cls, path):
        return MemoryFileSystem._strip_protocol(path.removeprefix("cappedmem://"))

    def pipe_file(self, path, value, *args, **kwargs):
        self._spend(len(value))
        return super().pipe_file(path, value, *args, **kwargs)

    def put_file(self, lpath, rpath, *args, **kwargs):
        self._spend(os.path.getsize(lpath))
        return super().put_file(lpath, rpath, *args, **kwargs)

    def _spend(self, size: int) -> None:
        used = sum(len(f.getvalue()) for f in self.store.values() if hasattr(f, "getvalue"))
        if used + size > self.budget:
            raise OSError(errno.ENOSPC, "No space left on device")


fsspec.register_implementation("cappedmem", CappedMemoryFileSystem, clobber=True)


def test_a_full_object_store_fails_at_once_naming_path_and_bytes_and_leaves_no_partial_backup(tmp_path, monkeypatch):
    monkeypatch.setattr(CappedMemoryFileSystem, "budget", 2000)  # whatever another test set
    sources = _sources(tmp_path, size=1500)
    (sources["adapter"] / "more.bin").write_bytes(os.urandom(1500))  # 3,002 bytes: past the 2,000 budget
    destination = f"cappedmem://bk-{uuid.uuid4().hex[:8]}"
    with pytest.raises(BackupSpaceError) as info:
        backup(sources, destination, "run-full")
    message = str(info.value)
    assert f"no space left at {destination}/run-full" in message and "needs 3" in message and "bytes" in message
    assert not is_transient(info.value)  # the backup task does not retry it
    fs, root = fsspec.core.url_to_fs(destination)
    assert not fs.exists(f"{root}/run-full")  # no partial folder, so no MANIFEST either


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.decode().strip() or 'not permitted'})")


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "1m")
    yield disk
    subprocess.run(["umount", "--lazy", str(disk)], check=False)  # never leave a mount behind


def test_a_backup_larger_than_the_free_disk_space_fails_before_copying(small_disk, tmp_path):
    sources = _sources(tmp_path, size=3 * 2**20)
    with pytest.raises(BackupSpaceError, match=r"needs 3,1\d\d,\d{3} bytes \(3\.0 MiB\) .* bytes are free") as info:
        backup(sources, str(small_disk / "backups"), "run-big")
    assert str(small_disk / "backups" / "run-big") in str(info.value) and not is_transient(info.value)
    assert not (small_disk / "backups" / "run-big").exists()


def test_a_disk_that_fills_during_the_copy_fails_once_with_no_partial_backup(small_disk, tmp_path, monkeypatch):
    from trainer.storage import backup as backup_module

    # The free-space check passes (another writer fills the disk after it): the real ENOSPC of the
    # tmpfs must still end as one BackupSpaceError and no partial folder.
    monkeypatch.setattr(backup_module, "check_free_space", lambda *args: None)
    sources = _sources(tmp_path, size=3 * 2**20)
    with pytest.raises(BackupSpaceError, match="no space left at") as info:
        backup(sources, str(small_disk / "backups"), "run-big")
    assert "needs 3,1" in str(info.value) and "bytes" in str(info.value)
    assert not (small_disk / "backups" / "run-big").exists()


def test_restore_never_replaces_a_folder_it_did_not_write(good_backup, tmp_path):
    from trainer.errors import BackupError
    from trainer.storage.restore import RESTORE_MARKER, clear_previous_restore

    home = tmp_path / "home"
    (home / "files").mkdir(parents=True)
    (home / "files" / "thesis.tex").write_text("a user's own work")
    with pytest.raises(BackupError, match=r"files exists and was not written by a restore"):
        restore(str(good_backup), home)
    assert (home / "files" / "thesis.tex").read_text() == "a user's own work"
    (home / "files" / "thesis.tex").unlink()
    (home / "model").mkdir()
    (home / "model" / "notes.txt").write_text("mine")
    with pytest.raises(BackupError, match=r"model exists and was not written by a restore"):
        restore(str(good_backup), home)
    assert (home / "model" / "notes.txt").is_file()
    # A previous restore's folders (even a half-written files/) are replaced.
    (home / "model" / "notes.txt").unlink()
    (home / "model" / "MLmodel").write_text("flavors: {}")
    (home / "files" / RESTORE_MARKER).write_text("")
    (home / "files" / "partial.bin").write_bytes(b"x")
    clear_previous_restore(home)


def _fifo_for_an_empty_file(copy: Path) -> None:
    (copy / "adapter" / "empty.txt").write_text("")
    _tamper(copy, "adapter/empty.txt", copy / "adapter" / "empty.txt")
    (copy / "adapter" / "empty.txt").unlink()
    os.mkfifo(copy / "adapter" / "empty.txt")  # size 0 like the listed file: reading it would block forever


def _manifest_is(kind: str):
    def tamper(copy: Path) -> None:
        (copy / MANIFEST).unlink()
        os.mkfifo(copy / MANIFEST) if kind == "fifo" else (copy / MANIFEST).mkdir()

    return tamper


def _deep_manifest(copy: Path) -> None:
    text = (copy / MANIFEST).read_text()
    (copy / MANIFEST).write_text(text[:-1] + ', "deep": ' + "[" * 200_000 + "]" * 200_000 + "}")


def _entry_is_a_folder(copy: Path) -> None:
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["files"]["adapter"] = {"sha256": "0" * 64, "bytes": 4096}
    (copy / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "tamper, needle",
    [
        (_fifo_for_an_empty_file, "adapter/empty.txt (not a regular file)"),
        (_manifest_is("fifo"), "MANIFEST.json is not a regular file"),
        (_manifest_is("dir"), "MANIFEST.json is not a regular file"),
        (_deep_manifest, "MANIFEST.json is not valid JSON"),
        (_entry_is_a_folder, "adapter (not a regular file)"),
    ],
    ids=["fifo-entry", "fifo-manifest", "dir-manifest", "deep-manifest", "folder-entry"],
)
def test_a_hostile_backup_is_one_line_never_a_hang_or_a_traceback(good_backup, tmp_path, tamper, needle):
    import shutil
    import time

    copy = tmp_path / "copy"
    shutil.copytree(good_backup, copy)
    tamper(copy)
    for command in (["verify", str(copy)], ["restore", str(copy), "--to", str(tmp_path / "out")]):
        started = time.monotonic()
        result = _cli(*command)
        assert time.monotonic() - started < 30
        _one_error_line(result, needle)


def test_restore_to_a_file_is_one_line(good_backup, tmp_path):
    target = tmp_path / "a-file"
    target.write_text("mine")
    _one_error_line(_cli("restore", str(good_backup), "--to", str(target)), "not a folder; choose an empty destination")
    assert target.read_text() == "mine"


@pytest.mark.parametrize(
    "location, needle",
    [
        ("s3://bucket/backups/run-1", "the package for this location is not installed"),
        ("nope://bucket/run-1", "can't open this location"),
    ],
)
def test_a_location_that_cannot_be_opened_is_one_line(location, needle):
    import importlib.util

    if location.startswith("s3://") and importlib.util.find_spec("s3fs") is not None:
        pytest.skip("s3fs is installed here")
    for command in (["verify", location], ["restore", location]):
        _one_error_line(_cli(*command), needle)


def test_a_zip_chain_on_a_file_that_is_not_a_zip_is_one_line(good_backup):
    _one_error_line(_cli("verify", f"zip://x::file://{good_backup / MANIFEST}"), "can't open this location")


def test_a_resealed_backup_whose_adapter_does_not_load_is_not_restored_or_registered(good_backup, tmp_path):
    """The manifest rewritten to match garbage adapter files: verify passes (the bytes are what the
    manifest says), restore refuses before it builds or registers anything."""
    adapter = good_backup / "adapter"
    for name, content in {"adapter_config.json": b"[1, 2]", "adapter_model.safetensors": b"not safetensors"}.items():
        (adapter / name).write_bytes(content)
        _tamper(good_backup, f"adapter/{name}", adapter / name)
    base = tmp_path / "a-base"  # named on the command line, as a backup with a local base needs
    base.mkdir()
    (base / "config.json").write_text('{"model_type": "llama"}')
    to = tmp_path / "out"
    result = _cli("restore", str(good_backup), "--to", str(to), "--base-model", str(base), "--register")
    _one_error_line(result, "adapter/adapter_config.json is not a JSON object; not restored")
    assert not (to / "model").exists()


def test_restore_to_an_empty_name_is_refused(good_backup):
    result = _cli("restore", str(good_backup), "--to", "")
    assert (result.returncode, result.stderr.strip().splitlines()[0][:18]) == (2, "error: --to: empty")


@pytest.mark.parametrize("to", ["s3://bucket/x", "file:///tmp/x"])
def test_restore_to_a_url_is_refused_not_made_a_local_folder(good_backup, to, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _cli("restore", str(good_backup), "--to", to)
    assert result.returncode == 2 and "a restore is built in a local folder" in result.stderr
    assert not any(p.name.endswith(":") for p in tmp_path.iterdir())
