"""The validate stage under real Prefect and MLflow: lineage, the cache, and the gates.

The base model's tokenizer comes from a folder holding only the tiny tokenizer (built in a
second), so these tests load no model at all, as the validate stage must not.
"""

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient
from prefect import flow

from tests.conftest import chat, write_jsonl
from trainer.config import state
from trainer.config.loading import load_settings
from trainer.errors import DataGateError, DataUnusableError

pytestmark = pytest.mark.slow  # trains the tiny model or runs the flow


@flow(name="validate-only")
def validate_only(settings):
    from tasks.validate import validate_data

    return validate_data(settings)


def _settings(data: Path, tokenizer_folder: Path, *sets: str):
    return load_settings(
        "demo",
        None,
        [f"training_data_path={data}", f"base_model_assets_path={tokenizer_folder}", "min_valid_rows=4", *sets],
    )


def test_lineage_and_a_cache_that_still_gives_each_flow_run_its_own_mlflow_run(
    prefect_server, tmp_path, tokenizer_folder
):
    data = tmp_path / "data"
    write_jsonl(data / "a.jsonl", [chat(f"question {i}", f"answer {i}") for i in range(12)])
    write_jsonl(data / "sub" / "b.jsonl", [chat("the longest question " * 30, "a long answer " * 30)])

    # Tokenized by two worker processes, spawned from the Prefect task's thread.
    first = validate_only(_settings(data, tokenizer_folder, "max_seq_length=64", "tokenize_processes=2"))
    second = validate_only(  # neither changes what validation finds
        _settings(data, tokenizer_folder, "max_seq_length=64", "learning_rate=5e-5", "tokenize_processes=1")
    )
    assert not first.cached and second.cached
    assert first.run_id != second.run_id and first.output_dir != second.output_dir
    assert (first.fingerprint, first.rows_total, first.rows_valid, first.rows_overlong) == (
        second.fingerprint,
        13,
        13,
        1,
    )
    assert [e.key for e in first.train_examples] == [e.key for e in second.train_examples] and second.eval_examples

    # The cached result names its rows file; one cut short since (a full disk) is never read: validated again.
    rows_file = second.train_examples.path
    rows_file.write_bytes(rows_file.read_bytes()[:-100])
    third = validate_only(_settings(data, tokenizer_folder, "max_seq_length=64"))
    assert not third.cached and [e.key for e in third.train_examples] == [e.key for e in first.train_examples]
    assert validate_only(_settings(data, tokenizer_folder, "max_seq_length=64")).cached  # whole again

    client = MlflowClient(state.tracking_uri())
    for snapshot in (first, second):
        report = json.loads(Path(snapshot.report_path).read_text())
        assert Path(snapshot.report_path) == Path(snapshot.output_dir) / "data" / "validation_report.json"
        assert report["fingerprint"] == snapshot.fingerprint and report["overlong"][0]["file"] == "sub/b.jsonl"
        run = client.get_run(snapshot.run_id)
        assert run.data.tags["data_fingerprint"] == snapshot.fingerprint
        assert run.data.tags["contract_version"] == "chat@3.0.0" and run.data.tags["data_format"] == "chat"
        assert run.data.tags["data_validation_cached"] == str(snapshot.cached).lower()
        assert run.data.metrics["rows_total"] == 13 and run.data.metrics["rows_overlong"] == 1
        [dataset_input] = run.inputs.dataset_inputs
        assert dataset_input.dataset.digest == snapshot.fingerprint[:32] and str(data) in dataset_input.dataset.source
        assert {a.path for a in client.list_artifacts(snapshot.run_id, "data")} == {
            "data/validation_report.json",
            "data/quarantine.jsonl",
        }

    # What the result depends on changes the key: a data setting, the tokenizer limit, the bytes.
    quarantining = validate_only(
        _settings(data, tokenizer_folder, "max_seq_length=64", "overlong_rows=quarantine", "max_invalid_fraction=0.1")
    )
    assert not quarantining.cached and (quarantining.rows_valid, quarantining.rows_quarantined) == (12, 1)
    assert not validate_only(_settings(data, tokenizer_folder, "max_seq_length=1024")).cached
    assert validate_only(_settings(data, tokenizer_folder, "max_seq_length=1024")).cached
    with (data / "a.jsonl").open("a") as fh:
        fh.write(json.dumps(chat("one more", "row")) + "\n")
    changed = validate_only(_settings(data, tokenizer_folder, "max_seq_length=1024"))
    assert not changed.cached and changed.rows_total == 14 and changed.fingerprint != first.fingerprint


def test_one_bad_row_stops_the_run_with_the_report_path_and_a_summary_artifact(
    prefect_server, tmp_path, tokenizer_folder
):
    from prefect.artifacts import Artifact

    data = tmp_path / "data"
    write_jsonl(data / "d.jsonl", [chat(f"q{i}", f"a{i}") for i in range(10)] + [chat("q", " ")])
    (data / "README.md").write_text("about this data")
    with pytest.raises(DataGateError) as stopped:
        validate_only(_settings(data, tokenizer_folder))
    message = str(stopped.value)
    assert "1 of 11 rows quarantined" in message and "d.jsonl:11 blank_content" in message
    report_path = Path(message.rsplit("see ", 1)[1])
    report = json.loads(report_path.read_text())
    assert report["rows_quarantined"] == 1 and report["quarantined"][0]["line"] == 11
    assert (report_path.parent / "quarantine.jsonl").read_text().count("\n") == 1
    artifact = Artifact.get("data-contract")
    assert "**10/11** rows valid" in artifact.data and "`d.jsonl:11` **blank_content**" in artifact.data
    assert "| d.jsonl | chat | 11 | 10 | 1 | blank_content ×1 |" in artifact.data and "README.md" in artifact.data

    # A tolerance lets the same data through, the bad row left out of training.
    snapshot = validate_only(_settings(data, tokenizer_folder, "max_invalid_fraction=0.1"))
    assert snapshot.rows_valid == 10 and len(snapshot.train_examples) + len(snapshot.eval_examples) == 10


def test_no_data_files_stops_before_anything_else(prefect_server, tmp_path, tokenizer_folder):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("no data here")
    with pytest.raises(DataUnusableError, match=r"no data files found .*ignored: notes.txt"):
        validate_only(_settings(tmp_path / "data", tokenizer_folder))
