"""The promotion policy and the other pure lifecycle logic: lineage parsing, subsets, redaction,
reports, comparison."""

import json

import pytest

from trainer.registry.promotion import decide, decide_for_run

LOSS = dict(metric="eval_loss", direction="minimize", min_improvement=0.0)


def test_first_version_becomes_champion():
    decision = decide(**LOSS, challenger={"eval_loss": 3.0}, champion=None, champion_version=None)
    assert decision.promote and "first version" in decision.reason
    assert decision.tags()["promotion_decision"] == "promoted"


def test_better_is_promoted_worse_and_equal_are_not():
    better = decide(**LOSS, challenger={"eval_loss": 2.9}, champion={"eval_loss": 3.0}, champion_version="1")
    assert better.promote and better.improvement == pytest.approx(0.1)
    assert "better by 0.1000 > min_improvement 0" in better.reason
    worse = decide(**LOSS, challenger={"eval_loss": 3.1}, champion={"eval_loss": 3.0}, champion_version="1")
    assert not worse.promote and worse.improvement == pytest.approx(-0.1) and "the champion stays" in worse.reason
    assert worse.tags()["promotion_decision"] == "kept_champion" and worse.tags()["promotion_compared_with"] == "1"
    equal = decide(**LOSS, challenger={"eval_loss": 3.0}, champion={"eval_loss": 3.0}, champion_version="1")
    assert not equal.promote


def test_min_improvement_and_direction():
    small = decide("eval_loss", "minimize", 0.05, {"eval_loss": 2.97}, {"eval_loss": 3.0}, "4")
    assert not small.promote and "needs > 0.05" in small.reason
    accuracy = decide(
        "eval_token_accuracy", "maximize", 0.0, {"eval_token_accuracy": 0.6}, {"eval_token_accuracy": 0.5}, "4"
    )
    assert accuracy.promote
    assert not decide(
        "eval_token_accuracy", "maximize", 0.0, {"eval_token_accuracy": 0.4}, {"eval_token_accuracy": 0.5}, "4"
    ).promote


def test_missing_scores_never_promote():
    assert not decide(**LOSS, challenger={}, champion={"eval_loss": 3.0}, champion_version="1").promote
    assert not decide(
        **LOSS, challenger={"eval_loss": float("nan")}, champion={"eval_loss": 3.0}, champion_version="1"
    ).promote
    unscored = decide(**LOSS, challenger={"eval_loss": 1.0}, champion=None, champion_version="1")
    assert not unscored.promote and "could not be scored" in unscored.reason


def test_decide_for_run_champion_moved_and_auto_promote_off():
    moved = decide_for_run("eval_loss", "minimize", 0.0, True, {"eval_loss": 1.0}, "1", {"eval_loss": 3.0}, "2")
    assert not moved.promote and "moved from version 1 to 2" in moved.reason
    off = decide_for_run("eval_loss", "minimize", 0.0, False, {"eval_loss": 1.0}, "1", {"eval_loss": 3.0}, "1")
    assert not off.promote and "auto_promote is off" in off.reason
    first = decide_for_run("eval_loss", "minimize", 0.0, False, {"eval_loss": 1.0}, None, None, None)
    assert first.promote  # the first version becomes champion even with auto_promote off
    note = decide_for_run(
        "eval_loss", "minimize", 0.0, True, {"eval_loss": 1.0}, None, None, "3", "champion version 3 not scored: x"
    )
    assert not note.promote and "not scored: x" in note.reason


def test_parse_model_uri():
    from trainer.errors import SettingsError
    from trainer.registry.uris import parse_model_uri

    assert parse_model_uri("models:/demo/3") == ("demo", "3", None)
    assert parse_model_uri("models:/demo@champion") == ("demo", None, "champion")
    for bad in ("models:/demo", "models:/demo/latest", "models:/@x"):
        with pytest.raises(SettingsError, match="expected models:/NAME/VERSION"):
            parse_model_uri(bad)


def test_subset_is_seeded_and_stable_when_rows_are_added():
    from trainer.config.loading import load_settings
    from trainer.data.formats import Example
    from trainer.data.split import subset_examples
    from trainer.stages.refine import stage_settings

    rows = [Example(key=f"k{i}", file="f", line=i) for i in range(400)]
    chosen = subset_examples(rows, 0.25, 42)
    assert 60 < len(chosen) < 140 and chosen == subset_examples(rows, 0.25, 42)
    more = subset_examples(rows + [Example(key=f"new{i}", file="g", line=i) for i in range(50)], 0.25, 42)
    assert set(e.key for e in chosen) <= set(e.key for e in more)
    assert subset_examples(rows, 0.25, 7) != chosen
    first, second = stage_settings(load_settings("demo", None, ["max_steps=10", "refine_subset_fraction=0.3"]))
    assert first.train_subset_fraction == 0.3 and not first.auto_promote and first.learning_rate == 3e-3
    assert (
        second.train_subset_fraction == 1.0 and second.max_steps == 20 and second.learning_rate == pytest.approx(3e-4)
    )


def test_local_lineage_reads_checkpoint_marker_and_restored_manifest(tmp_path):
    from trainer.registry.lineage import local_lineage

    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    for step, run_id in ((3, "old"), (12, "abc123")):
        (run / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
        (run / "checkpoints" / f"checkpoint-{step}" / "llm_trainer_checkpoint.json").write_text(
            json.dumps({"mlflow_run_id": run_id})
        )
    assert local_lineage(run / "adapter", "adapter") == {"parent_run_id": "abc123"}
    assert local_lineage(run / "checkpoints" / "checkpoint-3", "checkpoint") == {"parent_run_id": "old"}
    restored = tmp_path / "restored" / "files"
    (restored / "adapter").mkdir(parents=True)
    (restored / "MANIFEST.json").write_text(
        json.dumps({"metadata": {"model": "m", "version": "4", "mlflow_run_id": "r9"}})
    )
    assert local_lineage(restored / "adapter", "adapter") == {
        "parent_model": "m",
        "parent_version": "4",
        "parent_run_id": "r9",
    }


def test_comparison_shows_only_settings_that_differ():
    from trainer.reports.compare import comparison_rows

    items = [
        {
            "label": "v1",
            "run_name": "a",
            "aliases": ["champion"],
            "params": {"learning_rate": "0.003", "batch_size": "8", "output_dir": "x"},
            "metrics": {"eval_loss": 3.5},
            "tags": {"data_fingerprint": "f" * 64},
        },
        {
            "label": "v2",
            "run_name": "b",
            "aliases": ["challenger"],
            "params": {"learning_rate": "0.001", "batch_size": "8", "output_dir": "y"},
            "metrics": {"eval_loss": 3.4, "champion_eval_loss": 3.5},
            "tags": {"data_fingerprint": "f" * 64, "parent_version": "1"},
        },
    ]
    rows = dict(comparison_rows(items))
    assert rows["learning_rate"] == ["0.003", "0.001"] and "batch_size" not in rows and "output_dir" not in rows
    assert rows["aliases"] == ["champion", "challenger"] and rows["eval_loss"] == ["3.5000", "3.4000"]
    assert rows["champion_eval_loss"] == ["—", "3.5000"] and rows["parent_version"] == ["—", "1"]
    assert rows["data_fingerprint"] == ["f" * 12, "f" * 12]


def test_run_markdown_and_loss_curve(tmp_path):
    from trainer.reports.plots import loss_curve
    from trainer.reports.run_report import run_markdown

    markdown = run_markdown(
        run_name="r",
        mlflow_run_id="id",
        settings={"learning_rate": 0.003, "batch_size": 8, "train_subset_fraction": 1.0},
        data={"eval_rows": 5, "train_rows": 40},
        metrics={"eval_loss": 3.0},
        baselines={"base": {"eval_loss": 3.5}, "champion": {"eval_loss": 3.2}},
        champion_version="2",
        model={"name": "m", "version": "3", "aliases": ["challenger", "champion"]},
        promotion="Promotion: ok",
        lineage={"parent_model": "m", "parent_version": "2", "parent_kind": "adapter"},
        backup={"location": "/b", "files": 3, "mib": 1.0},
        training={"global_step": 4, "device": "cpu", "quantization": "nf4", "train_loss": 3.1, "seconds": 2.0},
        samples=[{"prompt": "p|q", "output": "o"}],
    )
    assert "| eval_loss | 3.0000 | 3.5000 | -0.5000 | 3.2000 | -0.2000 |" in markdown
    assert "warm start from `m` version 2" in markdown and "| `learning_rate` | 0.003 |" in markdown
    assert "train_subset_fraction" not in markdown and "p\\|q" in markdown
    png = loss_curve(tmp_path / "c.png", [(1, 4.0), (2, 3.5)], [(2, 3.4)], {"base": 3.9, "champion": None}, "t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_backup_source_missing_is_not_retried(tmp_path):
    from tasks.retry import is_transient as is_retryable
    from trainer.errors import BackupCopyError, BackupError
    from trainer.storage.backup import backup

    with pytest.raises(BackupError, match="does not exist") as info:
        backup({"adapter": tmp_path / "nope"}, str(tmp_path / "b"), "run")
    assert not is_retryable(info.value)
    assert is_retryable(BackupCopyError("copy failed verification"))


def test_settings_hash_ignores_nothing_but_secrets():
    from trainer.config.loading import load_settings
    from trainer.registry.runs import settings_hash

    a = load_settings("demo", None, [])
    assert settings_hash(a) == settings_hash(load_settings("demo", None, []))
    assert settings_hash(a) != settings_hash(load_settings("demo", None, ["learning_rate=1e-3"]))
    assert len(settings_hash(a)) == 16


def test_secret_names_are_whole_words():
    from trainer.redact import is_secret_name

    for name in ("HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_PASSWORD", "OPENAI_API_KEY",
                 "GOOGLE_APPLICATION_CREDENTIALS", "hf-token"):  # fmt: skip
        assert is_secret_name(name), name
    for name in ("max_new_tokens", "TOKENIZERS_PARALLELISM", "PWD", "keep_last_n_checkpoints", "author"):
        assert not is_secret_name(name), name
