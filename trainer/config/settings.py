"""The one settings model: every knob of the configuration guide plus what training needs.

Sources, later ones winning (see `trainer.config.loading`): preset -> YAML file -> `--set key=value`
flags (and Prefect flow parameters, which are this model serialised). The fields are grouped in
sections (`trainer.config.sections`); `Settings` holds them all as top-level keys and adds the
checks that span sections and the values derived from them.

Only pydantic and the catalog are imported: a bad setting is reported in well under a second,
before torch or any service is touched.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import model_validator

from trainer.config.catalog import ARCHITECTURES
from trainer.config.sections import (
    STRICT,
    DataSettings,
    GuideSettings,
    LifecycleSettings,
    OutputSettings,
    QuantizationRank,
)
from trainer.config.training_settings import TrainingSettings
from trainer.errors import SettingsError
from trainer.redact import find_secret, redact

__all__ = ["QuantizationRank", "Settings"]

MAX_COUNT = 2**31 - 1


# Bases in reverse: pydantic lists the fields of the last base first, so the guide's come first.
class Settings(OutputSettings, LifecycleSettings, DataSettings, TrainingSettings, GuideSettings):
    model_config = STRICT

    @model_validator(mode="before")
    @classmethod
    def _packing_is_batching(cls, values: Any) -> Any:
        # `packing: true/false` (settings files and checkpoints written before `batching`).
        if isinstance(values, dict) and "packing" in values and "batching" not in values:
            values = dict(values)
            packing = values.pop("packing")
            values["batching"] = "packed" if str(packing).strip().lower() in {"true", "1", "yes", "on"} else "padded"
        return values

    @model_validator(mode="before")
    @classmethod
    def _no_credentials_as_given(cls, values: Any) -> Any:
        # The values as given, before a path setting turns `https://u:p@h/x` into `https:/u:p@h/x` and a
        # field's own error message quotes it.
        if isinstance(values, dict):
            for key, value in values.items():
                for text in _strings(value if not isinstance(value, Path) else str(value)):
                    kind = find_secret(text)
                    if kind is not None:
                        raise ValueError(_credential_message(str(key), kind))
        return values

    @model_validator(mode="after")
    def _no_credentials(self) -> Settings:
        # Settings are stored in clear where nothing can redact them afterwards (Prefect's flow-run
        # parameters, MLflow params, the settings file in every adapter, checkpoint and backup), so a
        # value holding a credential is refused rather than masked: the run would not be reproducible
        # from masked settings, and the clear copy would already sit in Prefect's database.
        for key, value in self.model_dump(mode="json").items():
            for text in _strings(value):
                kind = find_secret(text)
                if kind is not None:
                    raise ValueError(_credential_message(key, kind))
        return self

    @model_validator(mode="after")
    def _counts_fit(self) -> Settings:
        # Steps, iterations, tokens and sizes go into torch tensors and the Trainer as 32-bit ints;
        # 10**20 would pass here and fail after the model has loaded.
        for key, value in self.model_dump().items():
            if type(value) is int and key != "random_seed" and value > MAX_COUNT:
                raise ValueError(f"{key}: at most {MAX_COUNT:,} (got {value})")
        return self

    @model_validator(mode="after")
    def _lora_targets_exist(self) -> Settings:
        # With a catalog base (no local folder to read), its family's Linear layer names are known here,
        # so a typo stops the run in milliseconds; a local base is checked against its config.json on
        # the meta device before loading (trainer/model/targets.py).
        if self.lora_target_modules and self.base_model_assets_path is None:
            known = (*self.architecture.lora_target_modules, "lm_head")
            unknown = [t for t in self.lora_target_modules if t != "all-linear" and t.rsplit(".", 1)[-1] not in known]
            if unknown:
                raise ValueError(
                    f"lora_target_modules: {', '.join(unknown)} not among the Linear layers of "
                    f"{self.base_model_architecture} ({', '.join(known)}); or use all-linear"
                )
        return self

    @model_validator(mode="after")
    def _multi_node_needs_endpoint(self) -> Settings:
        if self.num_nodes > 1 and not self.rdzv_endpoint:
            raise ValueError(
                "rdzv_endpoint: num_nodes > 1 needs host:port of node 0 where the nodes meet, e.g. 10.0.0.5:29500"
            )
        return self

    # --- Derived values -------------------------------------------------------------------
    @property
    def architecture(self):
        return ARCHITECTURES[self.base_model_architecture]

    @property
    def model_name(self) -> str:
        """Registered model name: explicit, or a slug of element_name."""
        if self.registered_model_name:
            return self.registered_model_name
        slug = re.sub(r"[^a-z0-9]+", "-", self.element_name.lower()).strip("-")
        return slug or "llm-trainer"

    @property
    def quantization_bits(self) -> int | None:
        return None if self.quantization_rank == "none" else int(self.quantization_rank)

    @property
    def promotion_goal(self) -> str:
        """minimize or maximize: promotion_direction, or under `auto` the metric's natural direction."""
        if self.promotion_direction != "auto":
            return self.promotion_direction
        return "minimize" if self.promotion_metric in ("eval_loss", "eval_perplexity") else "maximize"

    def require_training_data(self) -> Path:
        if self.training_data_path is None:
            raise SettingsError(
                "training_data_path: required; set it to a folder of data files (*.jsonl, *.json, *.csv, *.parquet) "
                "(e.g. --set training_data_path=examples/data/customer-support/chat)"
            )
        return self.training_data_path

    def to_yaml(self) -> str:
        """The settings as YAML, redacted: what is written into adapters, checkpoints, backups and the
        launch spec (credentials are refused at validation; this masks anything the rule learns later)."""
        return redact(yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False))


def _strings(value: Any) -> list[str]:
    """Every string inside a setting's JSON value (lists and mappings, keys included)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _credential_message(key: str, kind: str) -> str:
    return (
        f"{key}: holds {kind}; settings are stored in clear (Prefect flow-run parameters, MLflow, the "
        "settings file in adapters, checkpoints and backups). Pass credentials through the environment "
        "(HF_TOKEN, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, ...), "
        "fsspec's own configuration (FSSPEC_<PROTOCOL>_<OPTION> variables, ~/.config/fsspec/) or, for "
        "a deployment, a Prefect Secret block in its job variables; see docs/lifecycle.md, Secrets"
    )
