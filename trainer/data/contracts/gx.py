"""Great Expectations on the typed frames: one suite per format, each expectation's `meta.reason`
the word a failing row is quarantined with. The only module that imports GX.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.data.contracts.suites import load_suite_document
from trainer.errors import ContractError


def run_suites(frames: dict[str, Any], contracts_dir: Path) -> dict[int, tuple[str, str]]:
    """Run each format's suite over its frame; row_id -> (reason, detail) of the first failed expectation."""
    import logging

    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # Each ephemeral context logs that it made a docs folder: one line per chunk of rows, and no news.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("llm_trainer_rows")
    failures: dict[int, tuple[str, str]] = {}
    for name, frame in frames.items():
        doc = load_suite_document(name, contracts_dir)
        # The suite's order is the reasons' priority: a row failing several gets the first reason.
        expectations = [{**e, "meta": {**e["meta"], "order": i}} for i, e in enumerate(doc["expectations"])]
        suite = gx.ExpectationSuite(name=doc["name"], expectations=expectations, meta=doc.get("meta", {}))
        batch = (
            source.add_dataframe_asset(name)
            .add_batch_definition_whole_dataframe("all")
            .get_batch(batch_parameters={"dataframe": frame})
        )
        result = batch.validate(
            suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["row_id"]}
        )
        for outcome in sorted(result.results, key=lambda r: r.expectation_config.meta["order"]):
            config = outcome.expectation_config
            raised = _raised(outcome.exception_info)
            if raised:
                raise ContractError(
                    f"data_contracts/{name}.json: {config.type} on {config.kwargs.get('column')} failed to run: "
                    f"{raised}"
                )
            if outcome.success:
                continue
            hits = outcome.result.get("unexpected_index_list")
            if not hits:
                raise ContractError(
                    f"data_contracts/{name}.json: {config.type} failed without naming rows; use per-row expectations"
                )
            for hit in hits:
                failures.setdefault(int(hit["row_id"]), (config.meta["reason"], config.meta.get("detail", "")))
    return failures


def _raised(info: Any) -> str | None:
    """The exception message in a GX result's exception_info (flat, or keyed by metric)."""
    if not info:
        return None
    if isinstance(info, dict) and "raised_exception" in info:
        return info.get("exception_message") or "error" if info["raised_exception"] else None
    if isinstance(info, dict):
        for value in info.values():
            as_dict = value if isinstance(value, dict) else getattr(value, "to_json_dict", lambda v=value: v)()
            message = _raised(as_dict)
            if message:
                return message
    return None
