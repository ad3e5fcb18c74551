"""The contract documents: the GX suites in `data_contracts/`, one per format, and the reason
vocabulary every quarantined row is tagged with.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from trainer.config.state import PROJECT_ROOT
from trainer.errors import ContractError
from trainer.model.rendering_code import rendering_code

CONTRACTS_DIR = PROJECT_ROOT / "data_contracts"


# ShareGPT rows are converted to chat messages and then held to the chat contract.
SUITE_FOR_FORMAT = {
    "chat": "chat",
    "sharegpt": "chat",
    "instruction": "instruction",
    "prompt_completion": "prompt_completion",
    "text": "text",
}


# The typed columns the code builds for each suite (besides `row_id`); a suite may check only these.
SUITE_COLUMNS = {
    "chat": ("turns", "roles", "min_content_chars", "total_chars", "is_duplicate"),
    "instruction": ("instruction", "input", "output", "total_chars", "is_duplicate"),
    "prompt_completion": ("prompt", "completion", "total_chars", "is_duplicate"),
    "text": ("text", "total_chars", "is_duplicate"),
}


# The reason vocabulary: every quarantined row carries exactly one of these.
REASONS: dict[str, str] = {
    "invalid_json": "not valid JSON: a line, a record of a JSON array, a CSV cell meant to hold JSON, or a field that "
    "holds JSON as a string (tool arguments, `tools`)",
    "invalid_utf8": "the line or record has bytes that are not UTF-8; its raw bytes are kept base64-encoded",
    "invalid_csv": "a CSV record the csv module can't read (a quote never closed, a stray carriage return)",
    "not_an_object": "a JSONL line or JSON array element that is valid JSON but not an object (an array, a string)",
    "ragged_row": "a CSV record with more or fewer values than the header has columns",
    "missing_header": "a CSV file whose first line names no known column: no header row",
    "unknown_format": "the row has none of the fields of any format",
    "wrong_format": "the row is of another format than the rest of its file (or than dataset_format)",
    "preference_data": "a preference row (chosen / rejected) in a file of training rows: neither answer is trained",
    "label_false": "an unpaired-preference (KTO) row with label false: its answer is what not to say, never a target",
    "unsupported_content": "non-text content (an image, audio, a reasoning part) that text-only training can't use",
    "unsupported_field": "a field that changes what is trained in a way the trainer does not support (reasoning, "
    "per-part or character-span masks, training a user turn, a weight other than 0 or 1)",
    "unresolved_placeholder": "an answer still holds LLaMA-Factory's {{name}} / {{author}} placeholder",
    "missing_field": "a required field is missing or null (or a conversation is empty)",
    "wrong_type": "a field has the wrong JSON type (a number or list where a string belongs)",
    "unknown_role": "a turn's role is not system, user, assistant or tool (or one of their known aliases)",
    "no_assistant_turn": "the conversation has no assistant turn to learn from",
    "not_trained": "every assistant turn has weight 0: shown, never trained, so there is nothing to learn",
    "bad_turn_order": "turns are not: system turns, then user turn(s) and the assistant's answer (its tool calls each "
    "followed by their results), ending with an assistant turn",
    "blank_content": "a message or field is empty or whitespace only",
    "too_long": "the row is longer than the contract's character bound",
    "duplicate_row": "an exact duplicate of an earlier row (the first copy is kept)",
    "template_error": "the base model's chat template can't render the row (its own message is the detail)",
    "too_many_tokens": "the row is longer than max_seq_length tokens (overlong_rows: quarantine)",
}


def load_suite_document(name: str, contracts_dir: Path = CONTRACTS_DIR) -> dict[str, Any]:
    """One suite, checked against the validator: a version, known reasons, columns the code builds."""
    path = Path(contracts_dir) / f"{name}.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ContractError(f"{path}: can't read the contract ({exc})") from None
    if not doc.get("meta", {}).get("contract_version"):
        raise ContractError(f"{path}: meta.contract_version is missing")
    for i, expectation in enumerate(doc.get("expectations", [])):
        reason = (expectation.get("meta") or {}).get("reason")
        if reason not in REASONS:
            raise ContractError(f"{path}: expectation {i} has meta.reason {reason!r}; use one of {', '.join(REASONS)}")
        column = expectation.get("kwargs", {}).get("column")
        if column is not None and column not in SUITE_COLUMNS[name]:
            raise ContractError(
                f"{path}: expectation {i} checks column {column!r}, which the validator does not build "
                f"({', '.join(SUITE_COLUMNS[name])})"
            )
    return doc


def contract_version(
    suite_names: list[str] | tuple[str, ...] = tuple(SUITE_COLUMNS), contracts_dir: Path = CONTRACTS_DIR
) -> str:
    """`chat@2.0.0,text@2.0.0`: the versions of the suites named, recorded with each run."""
    return (
        ",".join(
            f"{n}@{load_suite_document(n, contracts_dir)['meta']['contract_version']}" for n in sorted(set(suite_names))
        )
        or "none"
    )


def validator_digest(contracts_dir: Path = CONTRACTS_DIR) -> str:
    """sha256 over the suites and the code that applies them (reading, checks, token counting): part
    of the validate cache key, so an edited suite (version bumped or not) or a changed check never
    reuses an old result."""
    digest = hashlib.sha256()
    data_package = Path(__file__).resolve().parent.parent  # trainer/data: reading, formats, contracts
    code = sorted(set(data_package.rglob("*.py")) | set(rendering_code()))  # + how rows are rendered and tokenized
    for path in sorted(Path(contracts_dir).glob("*.json")) + code:
        digest.update(path.relative_to(path.parents[1]).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
