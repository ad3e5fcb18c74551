import pytest

from tests.conftest import DEMO_DATA, REPO
from trainer.config.catalog import (
    ARCHITECTURES,
    get_architecture,
    resolve_architecture_key,
)
from trainer.config.loading import load_settings, parse_set_flags
from trainer.config.presets import PRESETS
from trainer.config.settings import Settings
from trainer.errors import SettingsError


def test_no_arguments_means_demo():
    settings = load_settings()
    assert settings.base_model_architecture == "tiny-llama"
    assert settings.training_data_path == DEMO_DATA
    assert settings.quantization_rank == 4


def test_defaults_follow_the_guide():
    settings = Settings()
    assert settings.learning_rate == 1e-4
    assert settings.element_name == "LLM Trainer"
    assert settings.trust_remote_code is False
    assert settings.enable_metrics is True


@pytest.mark.parametrize(
    "preset, arch, batch, lr, quant",
    [
        ("customer-service-bot", "llama-3.1-8b-instruct", 4, 1e-4, 4),
        ("healthcare-qa", "mistral-7b", 2, 5e-5, 4),
        ("legal-document", "llama-13b", 1, 1e-5, 4),
    ],
)
def test_guide_presets_match_its_table(preset, arch, batch, lr, quant):
    settings = load_settings(preset, None, [f"training_data_path={DEMO_DATA}"])
    assert (
        settings.base_model_architecture,
        settings.batch_size,
        settings.learning_rate,
        settings.quantization_rank,
    ) == (
        arch,
        batch,
        lr,
        quant,
    )


def test_later_sources_win(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("preset: healthcare-qa\nbatch_size: 3\nlearning_rate: 2.0e-5\n")
    settings = load_settings(None, config, [f"training_data_path={DEMO_DATA}", "learning_rate=1e-6"])
    assert settings.base_model_architecture == "mistral-7b"  # from the preset named in the file
    assert settings.batch_size == 3  # the file beats the preset
    assert settings.learning_rate == 1e-6  # --set beats the file


def test_set_flags_parse_yaml_scalars():
    values = parse_set_flags(
        ["learning_rate=1e-4", "enable_metrics=false", "quantization_rank=none", "lora_target_modules=[q_proj, v_proj]"]
    )
    assert values == {
        "learning_rate": 1e-4,
        "enable_metrics": False,
        "quantization_rank": "none",
        "lora_target_modules": ["q_proj", "v_proj"],
    }
    assert load_settings("demo", None, ["quantization_rank=none"]).quantization_bits is None


@pytest.mark.parametrize(
    "preset, sets, needle",
    [
        ("nope", [], "preset: unknown preset 'nope'; choose one of: demo"),
        ("demo", ["colour=blue"], "unknown setting 'colour'"),
        ("demo", ["learning_rate=-1"], "learning_rate: Input should be greater than 0"),
        ("demo", ["batch_size=0"], "batch_size: Input should be greater than or equal to 1"),
        ("demo", ["quantization_rank=3"], "quantization_rank: must be 2, 4, 8 or none"),
        ("demo", ["training_data_path=/no/such/dir"], "training_data_path: /no/such/dir does not exist"),
        ("demo", ["base_model_architecture=gpt-17"], "base_model_architecture: unknown architecture 'gpt-17'"),
        ("demo", ["learning_rate"], "expected KEY=VALUE"),
    ],
)
def test_bad_settings_give_one_line_naming_the_setting(preset, sets, needle):
    with pytest.raises(SettingsError) as info:
        load_settings(preset, None, sets)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_malformed_yaml_names_file_and_line(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("batch_size: 4\nlearning_rate: [1e-4\n")
    with pytest.raises(SettingsError, match=r"bad.yaml line \d+: malformed YAML"):
        load_settings(None, config, [])


def test_real_presets_require_data_path():
    settings = load_settings("customer-service-bot", None, [])
    with pytest.raises(SettingsError, match="training_data_path: required"):
        settings.require_training_data()


def test_every_setting_has_a_description():
    for name, field in Settings.model_fields.items():
        assert field.description and len(field.description) > 15, name


def test_guide_names_are_settings():
    guide = {
        "element_name",
        "version",
        "running_on",
        "trained_artifact",
        "base_model_architecture",
        "training_data_path",
        "base_model_assets_path",
        "enable_metrics",
        "batch_size",
        "learning_rate",
        "quantization_rank",
        "save_every_n_iterations",
        "random_seed",
        "artifact_backup_save_path",
    }
    assert guide <= set(Settings.model_fields)
    assert {"demo", "customer-service-bot", "healthcare-qa", "legal-document"} <= set(PRESETS)


def test_catalog_has_the_guides_models():
    for name in ("LLaMA 3.1 8B Instruct", "Mistral 7B", "Gemma", "OpenChat", "Falcon", "LLaMA 13B", "tiny-llama"):
        assert resolve_architecture_key(name) is not None, name
    assert get_architecture("falcon").lora_target_modules[0] == "query_key_value"
    assert all(a.hub_id or a.key == "tiny-llama" for a in ARCHITECTURES.values())
    assert 3.6 < get_architecture("llama-3.1-8b-instruct").weights_gib(4) < 3.9  # 8.03e9 x 0.5 bytes


def test_model_name_is_derived_from_element_name():
    assert Settings(element_name="Customer Service Bot!").model_name == "customer-service-bot"
    assert Settings(registered_model_name="my.model_1").model_name == "my.model_1"
    with pytest.raises(ValueError):
        Settings(registered_model_name="bad name")


def test_example_configs_load():
    configs = sorted((REPO / "examples" / "configs").glob("*.yaml"))
    assert len(configs) >= 4
    for config in configs:
        load_settings(None, config, [f"training_data_path={DEMO_DATA}"])
