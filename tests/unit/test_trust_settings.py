"""Settings that could only fail after the model has loaded (or train a NaN model) are refused up
front with one line naming the setting; credentials in setting values are refused, not stored."""

from __future__ import annotations

import json

import pytest

from tests.cli import invoke
from trainer.config.loading import load_settings
from trainer.config.settings import Settings
from trainer.errors import SettingsError

FLOATS = [name for name, field in Settings.model_fields.items() if "float" in str(field.annotation)]


def test_the_float_settings_are_the_ones_we_think():
    assert {"learning_rate", "weight_decay", "max_grad_norm", "warmup_ratio", "lora_dropout"} <= set(FLOATS)


@pytest.mark.parametrize("name", FLOATS)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", ".inf", ".nan"])
def test_every_float_setting_refuses_non_finite_values(name, value):
    with pytest.raises(SettingsError, match=rf"^{name}: .*finite"):
        load_settings("demo", None, [f"{name}={value}"])


def test_seed_must_fit_numpy_and_counts_must_fit_32_bits():
    assert load_settings("demo", None, [f"random_seed={2**32 - 1}"]).random_seed == 2**32 - 1
    with pytest.raises(SettingsError, match=r"^random_seed: Input should be less than or equal to 4294967295"):
        load_settings("demo", None, ["random_seed=99999999999999999999"])
    with pytest.raises(SettingsError, match=r"^max_new_tokens: at most 2,147,483,647 \(got 10000000000\)"):
        load_settings("demo", None, ["max_new_tokens=10000000000"])
    with pytest.raises(SettingsError, match=r"^experiment_name: "):
        load_settings("demo", None, ["experiment_name="])


def test_lora_targets_are_checked_against_the_catalog_family():
    assert load_settings("demo", None, ["lora_target_modules=[q_proj, self_attn.v_proj, all-linear]"])
    with pytest.raises(SettingsError, match=r"^lora_target_modules: nope_module not among the Linear layers of "):
        load_settings("demo", None, ["lora_target_modules=[q_proj, nope_module]"])
    with pytest.raises(SettingsError, match="query_key_value"):  # Falcon's names are not LLaMA's
        load_settings("demo", None, ["lora_target_modules=[query_key_value]"])


def test_lora_targets_of_a_local_base_come_from_its_config_on_the_meta_device(tmp_path):
    from trainer.model.targets import check_lora_targets, linear_module_names

    config = {
        "model_type": "llama",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 100,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))  # a config alone: no weights exist
    names = linear_module_names(tmp_path)
    assert "model.layers.1.mlp.down_proj" in names and "lm_head" in names
    check_lora_targets(["q_proj", "layers.0.mlp.up_proj"], tmp_path)
    with pytest.raises(SettingsError, match=rf"lora_target_modules: nope_module matches no Linear layer .* {tmp_path}"):
        check_lora_targets(["q_proj", "nope_module"], tmp_path)
    # A local base is not judged by the catalog's names (its own layers decide), so settings accept it.
    settings = load_settings("demo", None, [f"base_model_assets_path={tmp_path}", "lora_target_modules=[anything]"])
    assert settings.lora_target_modules == ["anything"]


SECRETS = {
    "element_name": "bot hf_abcdefghijklmnopqrstuvwxyzABCDEF12",
    "artifact_backup_save_path": "memory://user:PASSWORD123@bucket/bk",
    "version": "sk-proj-abcdefghijklmnopqrstuvwx",
    "experiment_name": "AKIAABCDEFGHIJKLMNOP",
    "running_on": "s3://bucket/x?X-Amz-Signature=deadbeefcafe",
}


@pytest.mark.parametrize("name", list(SECRETS))
def test_credentials_in_setting_values_are_refused_without_echoing_them(name):
    secret = SECRETS[name]
    with pytest.raises(SettingsError) as info:
        load_settings("demo", None, [f"{name}={secret}"])
    message = str(info.value)
    assert message.startswith(f"{name}: holds ") and "environment" in message and "Prefect Secret block" in message
    assert secret not in message and "PASSWORD123" not in message and "\n" not in message


def test_the_value_of_a_secret_environment_variable_is_refused(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "sentinel-7f3c9a-value")
    with pytest.raises(SettingsError, match=r"^element_name: holds the value of the environment variable "):
        load_settings("demo", None, ["element_name=run sentinel-7f3c9a-value"])


def test_the_cli_refuses_a_pasted_token_in_one_line_without_printing_it():
    token = "hf_SENTINELabcdefghijklmnopqrstuvwxyz12"
    result = invoke("run", "--set", f"element_name={token}")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: element_name: holds a Hugging Face token")
    assert token not in result.stderr


def test_settings_files_are_redacted_even_if_a_secret_appears_later(monkeypatch):
    settings = load_settings("demo", None, ["element_name=run-sentinel-42ab"])
    monkeypatch.setenv("LATER_API_KEY", "run-sentinel-42ab")  # a secret learnt after validation
    assert "run-sentinel-42ab" not in settings.to_yaml()


@pytest.mark.parametrize(
    "assignment, needle",
    [
        ("weight_decay=inf", "weight_decay: "),
        ("random_seed=99999999999999999999", "random_seed: Input should be less than or equal to 4294967295"),
        ("lora_target_modules=[nope_module]", "lora_target_modules: nope_module not among the Linear layers"),
        # A backup location the backup stage could not open, refused before training (s3fs is not installed).
        ("artifact_backup_save_path=s3://bucket/backups", "artifact_backup_save_path: s3:// can't be written here"),
        ("artifact_backup_save_path=foo://x/y", "artifact_backup_save_path: foo:// can't be written here"),
    ],
)
def test_the_cli_refuses_what_used_to_fail_after_loading_in_one_line(assignment, needle):
    result = invoke("run", "--set", assignment)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {needle}"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def _laughs(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "content, needle",
    [
        (_laughs(10).encode(), "expands to more than 10,000 values (YAML anchors and aliases?)"),  # ~360 bytes
        (("x: " + "[" * 5000 + "]" * 5000 + "\n").encode(), "nested too deeply"),
        (b"learning_rate: 1e-4\nbatch_size: 2\nlearning_rate: 0.1\n", "line 3: duplicate key 'learning_rate'"),
        (b"element_name: caf\xe9\n", "not UTF-8 text (byte 17)"),
        (b"element_name: x\n" + b"# padding\n" * 120_000, "larger than 1 MiB"),
        (b"- a list\n- not a mapping\n", "expected a mapping of setting: value, got list"),
        (b"1: 2\n", "1 is not a setting name"),
        (b"max_steps: " + b"9" * 5000 + b"\n", "Exceeds the limit (4300 digits)"),
    ],
    ids=["alias-bomb", "deep", "duplicate-key", "latin-1", "huge", "not-a-mapping", "int-key", "huge-int"],
)
def test_a_hostile_config_file_is_one_line_in_bounded_time(tmp_path, content, needle):
    import time

    config = tmp_path / "settings.yaml"
    config.write_bytes(content)
    started = time.monotonic()
    result = invoke("run", "--config", config)
    assert time.monotonic() - started < 10
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(f"error: --config {config}") and needle in lines[0], lines[0]
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "assignment, needle",
    [
        ("lora_target_modules=" + "[" * 5000 + "]" * 5000, "nested too deeply"),
        ("max_steps=" + "9" * 5000, "Exceeds the limit (4300 digits)"),
        ("element_name=caf\udce9", "not UTF-8 text"),  # a non-UTF-8 byte in argv (surrogate-escaped)
    ],
    ids=["deep", "huge-int", "latin-1"],
)
def test_a_set_flag_is_read_within_the_same_bounds(assignment, needle):
    result = invoke("run", "--set", assignment)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and needle in lines[0], result.stderr[-2000:]


@pytest.mark.parametrize(
    "name", ["base_model_assets_path", "training_data_path", "output_dir", "eval_data_path", "trained_artifact"]
)
@pytest.mark.parametrize("url", ["https://bob:S3cretPW@host/x", "s3://bob:S3cretPW@bucket/x"])
def test_a_credential_url_in_a_path_setting_is_refused_before_it_becomes_a_path(name, url):
    """A path setting turns `https://u:p@h` into `https:/u:p@h` (one slash): the check reads the value
    as given, and redaction knows the collapsed form too, so the password is never printed."""
    result = invoke("estimate", "--set", f"{name}={url}")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {name}: holds credentials in a URL"), lines[0]
    assert "S3cretPW" not in result.stdout + result.stderr


def test_a_credential_url_given_as_a_data_path_is_never_printed():
    result = invoke("validate", "https://bob:S3cretPW@host/data")
    assert result.returncode == 2 and "S3cretPW" not in result.stdout + result.stderr
