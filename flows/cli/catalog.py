"""What there is to choose from: `presets`, `models`, `settings`, and `estimate` (peak GPU memory)."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.app import ConfigOption, PresetOption, SetOption, app, load, print_table


@app.command()
def presets() -> None:
    """List the presets and what they set."""
    from trainer.config.presets import PRESETS

    rows = [
        (n, v["base_model_architecture"], str(v["batch_size"]), f"{v['learning_rate']:g}", str(v["quantization_rank"]))
        + (v["description"],)
        for n, v in PRESETS.items()
    ]
    print_table(
        ("preset", "model", "batch", "LR", "quant", "notes"), rows, title="Presets (llm-trainer run --preset NAME)"
    )


@app.command()
def models() -> None:
    """List the base model architectures of the catalog."""
    from trainer.config.catalog import ARCHITECTURES

    rows = []
    for a in ARCHITECTURES.values():
        params = f"{a.params_billion:.2f} B" if a.params_billion >= 0.1 else f"{a.params_billion * 1000:.1f} M"
        rows.append(
            (a.key, a.display_name, a.hub_id or "(built locally)", params, f"{a.weights_gib(4):.2f} GiB", a.use_case)
        )
    print_table(
        ("key", "model", "hub id", "params", "4-bit weights", "use case"),
        rows,
        title="Base model architectures (base_model_architecture=KEY)",
    )


@app.command("settings")
def settings_reference(
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the README's markdown table.")] = False,
) -> None:
    """List every setting with its default and description."""
    from trainer.config.reference import settings_markdown, settings_rows

    if markdown:
        typer.echo(settings_markdown())
        return
    print_table(
        ("setting", "default", "what it does"),
        settings_rows(),
        title="Settings (YAML keys, --set KEY=VALUE, Prefect parameters)",
    )


@app.command()
def estimate(
    config: ConfigOption = None,
    preset: PresetOption = None,
    sets: SetOption = [],  # noqa: B006
    gpu: Annotated[
        float | None, typer.Option("--gpu", help="Your GPU's memory in GB: what to change for models that won't fit.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: each term and `total_gib`.")] = False,
) -> None:
    """Peak GPU memory for these settings, for every catalog model: the smallest common GPU it fits
    (12, 16, 24, 40, 80 GB) and, when it does not fit (that, or --gpu), the setting to change."""
    import json

    from trainer.config.catalog import ARCHITECTURES
    from trainer.model.memory import CUDA_CONTEXT_GIB, changes_to_fit, estimate_for_settings, smallest_gpu

    settings = load(preset, config, sets)
    results = {}
    for key in ARCHITECTURES:
        e = estimate_for_settings(settings, key)
        fits = smallest_gpu(e)
        target = gpu if gpu is not None else (None if fits else 80.0)
        short = target is not None and e.required_gib + CUDA_CONTEXT_GIB > target
        tips = changes_to_fit(settings, target - CUDA_CONTEXT_GIB, key) if short else []
        results[key] = (e, fits, tips if short else None)
    if as_json:
        recipe = results[settings.base_model_architecture][0].recipe
        payload = {
            "model": settings.base_model_architecture,
            "tokens_per_step": settings.batch_size * settings.max_seq_length,
            "loss": recipe.loss,
            "gradient_checkpointing": recipe.gradient_checkpointing,
            "activation_offloading": recipe.activation_offloading,
            "packed": recipe.packed,
            **results[settings.base_model_architecture][0].as_dict(),
            "models": {
                key: {**e.as_dict(), "smallest_gpu_gb": fits, "fits": tips is None, "changes_to_fit": tips or []}
                for key, (e, fits, tips) in results.items()
            },
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    rows = []
    for key, (e, fits, tips) in results.items():
        name = f"[bold]{key}[/]" if key == settings.base_model_architecture else key
        t = {k: v / 2**30 for k, v in e.terms.items()}
        activations = t["layer_inputs"] + t["attention"] + t["layer_activations"] + t["backward_working"]
        numbers = (t["base_weights"], t["adapter_optimizer"], activations + t["dequantized_weight"], t["loss"])
        if tips is None:
            advice = "fits" if gpu is not None else ""
        else:
            advice = "; or ".join(tips) if tips else "no single setting change fits; combine them"
        rows.append((name, *(f"{v:.2f}" for v in (*numbers, e.total_gib)), f"{fits} GB" if fits else "> 80 GB", advice))
    columns = ("model", "weights", "LoRA+Adam", "layers", "loss", "peak", "GPU", "to fit")
    title = (
        f"Peak GPU memory (GiB), batch {settings.batch_size} x {settings.max_seq_length}, quantization "
        f"{settings.quantization_rank}, LoRA rank {settings.lora_rank}; the loss and a layer's backward never overlap"
        + (f"; to fit your {gpu:g} GB GPU" if gpu is not None else "")
    )
    print_table(columns, rows, title=title, right=columns[1:6])
