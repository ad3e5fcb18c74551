"""The registered model: a LoRA adapter served as an MLflow pyfunc that answers prompts.

Logged with MLflow's "models from code": this file is copied into every logged model, so a
registered version loads without the llm-trainer package installed. It must stay self-contained
(torch, transformers, peft, pandas only).

Why not `mlflow.transformers.log_model`: with a PEFT model it wants torchvision, and its reload
re-initialises the base weights. A pyfunc with the adapter, the tokenizer and a reference to the
base assets is smaller and reloads to the same logits.

Artifacts:
  adapter         the adapter folder (adapter weights + tokenizer)
  base_reference  JSON: where the base weights are (path and/or hub id) and the quantization used
  base_model      optional: the base weights themselves, when small enough to embed
"""

from __future__ import annotations

import json
import os
import time
import warnings

import mlflow
from mlflow.pyfunc import PythonModel

# predict() takes a DataFrame, a list or a string on purpose; MLflow's advice to add type hints
# would turn on a conversion that rejects some of those.
warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method.*")


class AdapterChatModel(PythonModel):
    def load_context(self, context):
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        with open(context.artifacts["base_reference"], encoding="utf-8") as fh:
            reference = json.load(fh)
        base = context.artifacts.get("base_model") or reference.get("path") or reference.get("hub_id")
        on_gpu = torch.cuda.is_available()
        dtype = torch.bfloat16 if on_gpu else torch.float32
        kwargs = {"dtype": dtype, "use_safetensors": True}
        bits = reference.get("quantization_bits")
        if bits in (4, 8):
            # Serve on the same quantized base the adapter was trained and evaluated on.
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = (
                BitsAndBytesConfig(
                    load_in_4bit=True,
                    bnb_4bit_quant_type="nf4",
                    bnb_4bit_use_double_quant=True,
                    bnb_4bit_compute_dtype=dtype,
                )
                if bits == 4
                else BitsAndBytesConfig(load_in_8bit=True)
            )
            kwargs["device_map"] = {"": 0 if on_gpu else "cpu"}
        self.tokenizer = AutoTokenizer.from_pretrained(context.artifacts["adapter"])
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
        if on_gpu and bits not in (4, 8):
            model = model.to("cuda")
        self.model = PeftModel.from_pretrained(model, context.artifacts["adapter"]).eval()
        if not on_gpu:
            # bitsandbytes' AVX512-BF16 inference kernel computes 4-bit layers in bf16 on such CPUs,
            # which moves logits by ~2e-2 from what evaluation measured (trainer.model turns it off
            # there for training's sake). Off here too, so the served model is the evaluated one.
            for module in self.model.modules():
                if hasattr(module, "support_avx512bf16_for_cpu"):
                    module.support_avx512bf16_for_cpu = False
        self.default_max_new_tokens = int(reference.get("max_new_tokens", 64))

    @staticmethod
    def _prompts(model_input) -> list[str]:
        if hasattr(model_input, "columns"):  # a pandas DataFrame (lists arrive as one unnamed column)
            if "prompt" in model_input.columns:
                column = model_input["prompt"]
            elif len(model_input.columns) == 1:
                column = model_input.iloc[:, 0]
            else:
                raise ValueError("input DataFrame needs a 'prompt' column")
            return [str(p) for p in column.tolist()]
        if isinstance(model_input, str):
            return [model_input]
        if isinstance(model_input, dict) and "prompt" in model_input:
            value = model_input["prompt"]
            return [value] if isinstance(value, str) else [str(v) for v in value]
        return [str(p) for p in model_input]

    def predict(self, context, model_input, params=None):
        import torch

        deadline = time.monotonic() + request_seconds()
        max_new_tokens = checked_max_new_tokens(params, self.default_max_new_tokens)
        prompts = self._prompts(model_input)
        if len(prompts) > MAX_PROMPTS:
            _refuse(f"{len(prompts)} prompts in one request; at most {MAX_PROMPTS}")
        device = next(self.model.parameters()).device
        answers = []
        for prompt in prompts:
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            inputs = self.tokenizer(text, add_special_tokens=False, return_tensors="pt").to(device)
            if inputs["input_ids"].shape[1] > MAX_PROMPT_TOKENS:
                _refuse(f"a prompt of {inputs['input_ids'].shape[1]} tokens; at most {MAX_PROMPT_TOKENS}")
            with torch.no_grad():
                output = self.model.generate(
                    **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id,
                    max_time=max(0.0, deadline - time.monotonic()),
                )  # fmt: skip
            if time.monotonic() >= deadline:
                _out_of_time(len(answers), len(prompts))
            answers.append(
                self.tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
            )
        return answers


# Every request's work is bounded, so one request can't hold the server for minutes: a request past a
# bound is answered 400 (MLflow's scoring server maps INVALID_PARAMETER_VALUE to it) before any
# generation starts. docs/security.md lists these caps.
MAX_NEW_TOKENS = 2048
MAX_PROMPT_TOKENS = 8192
MAX_PROMPTS = 64


def request_seconds() -> float:
    """How long one request may generate: the scoring server answers 504 after
    MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT seconds (60 by default) but does not stop the work it
    started, so generation stops itself 2 s before that (transformers' `max_time`)."""
    try:
        timeout = float(os.environ.get("MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT", "60"))
    except ValueError:
        timeout = 60.0
    return max(1.0, timeout - 2.0)


def _out_of_time(done: int, total: int):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

    raise MlflowException(
        f"the request ran past its time budget of {request_seconds():.0f} s after {done} of {total} prompts and was "
        "stopped; send fewer prompts or a smaller max_new_tokens",
        error_code=TEMPORARILY_UNAVAILABLE,
    )


def _refuse(message: str):
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    raise MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def checked_max_new_tokens(params, default: int) -> int:
    """The request's max_new_tokens (else the model's default), an integer within 1..MAX_NEW_TOKENS."""
    value = (params or {}).get("max_new_tokens", default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        _refuse(f"max_new_tokens: expected an integer, got {value!r}")
    if isinstance(value, float) and value != number or not 1 <= number <= MAX_NEW_TOKENS:
        _refuse(f"max_new_tokens: {value!r} is not an integer from 1 to {MAX_NEW_TOKENS}")
    return number


mlflow.models.set_model(AdapterChatModel())
