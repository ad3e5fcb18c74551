"""Real Great Expectations suites from data_contracts/ on real files: formats, reports, gates,
lineage and token lengths. The malformed-input table is in test_contract_cases.py."""

import base64
import json
import shutil

import pytest

from tests.conftest import DEMO_DATA, chat, write_jsonl
from trainer.config.state import PROJECT_ROOT
from trainer.data.contracts.report import check_gates
from trainer.data.contracts.suites import (
    REASONS,
    SUITE_COLUMNS,
    contract_version,
    load_suite_document,
    validator_digest,
)
from trainer.data.contracts.validate import fingerprint_path, validate_dataset
from trainer.data.formats import FORMATS
from trainer.errors import ContractError, DataGateError, DataUnusableError

REPO_CSV = DEMO_DATA.parent / "csv"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """The tiny model's tokenizer and chat template (built in a second, without the model)."""
    from trainer.model.assets import load_counting_tokenizer
    from trainer.model.tiny import build_tokenizer

    folder = tmp_path_factory.mktemp("tokenizer")
    build_tokenizer().save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return load_counting_tokenizer(folder)


def test_bundled_sample_data_is_all_valid_in_both_formats(tmp_path):
    report, examples = validate_dataset(DEMO_DATA, tmp_path / "chat")
    assert report.rows_total == report.rows_valid >= 300 and report.format == "chat"
    csv_report, csv_examples = validate_dataset(REPO_CSV, tmp_path / "csv")
    assert csv_report.rows_total == csv_report.rows_valid == report.rows_total and csv_report.format == "instruction"
    # The same content in both files converts to the same training messages.
    assert [e.messages for e in examples] == [e.messages for e in csv_examples]
    assert report.contract_version == "chat@3.0.0" and csv_report.contract_version == "instruction@2.1.0"


def test_every_format_converts_to_the_same_training_text(tmp_path, tokenizer):
    """One conversation written in every format and both file types trains on identical tokens."""
    from trainer.model.tokens import tokenize_example

    q, a, system = 'Where is my "order", please?', "It ships tomorrow,\nwith tracking.", "Be brief."
    data = tmp_path / "formats"
    write_jsonl(data / "chat.jsonl", [chat(q, a)])
    write_jsonl(
        data / "sharegpt.jsonl", [{"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}]
    )
    write_jsonl(data / "instruction.jsonl", [{"instruction": q, "input": "", "output": a}])
    write_jsonl(data / "prompt_completion.jsonl", [{"prompt": q, "completion": a, "id": 7}])
    (data / "instruction.csv").write_text(
        f'instruction,input,output,source\n"{q.replace(chr(34), 2 * chr(34))}",,"{a}",csv\n', encoding="utf-8"
    )
    (data / "mapped.csv").write_text(f'question,answer\n"{q.replace(chr(34), 2 * chr(34))}","{a}"\n', encoding="utf-8")
    report, examples = validate_dataset(data, column_mapping={"question": "prompt", "answer": "completion"})
    assert report.rows_valid == 6 and report.rows_quarantined == 0, report.quarantined
    assert {f.path: f.format for f in report.files} == {
        "chat.jsonl": "chat",
        "sharegpt.jsonl": "sharegpt",
        "instruction.jsonl": "instruction",
        "instruction.csv": "instruction",
        "prompt_completion.jsonl": "prompt_completion",
        "mapped.csv": "prompt_completion",
    }
    expected = [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    assert all(e.messages == expected for e in examples)
    ids = {tuple(tokenize_example(tokenizer, e).input_ids) for e in examples}
    assert len(ids) == 1
    assert tokenizer.decode(list(ids.pop())).count(a) == 1

    # instruction + input: the input follows the instruction in the user turn; system turns stay.
    write_jsonl(
        tmp_path / "more" / "a.jsonl", [{"instruction": "Summarise.", "input": "A long text.", "output": "Short."}]
    )
    _, [example] = validate_dataset(tmp_path / "more")
    assert example.messages[0] == {"role": "user", "content": "Summarise.\n\nA long text."}
    write_jsonl(tmp_path / "sys" / "a.jsonl", [{"messages": [{"role": "system", "content": system}] + expected}])
    _, [example] = validate_dataset(tmp_path / "sys")
    assert example.messages[0] == {"role": "system", "content": system}

    # text: no chat template, the whole text plus eos, as the trainer tokenizes it.
    write_jsonl(tmp_path / "text" / "a.jsonl", [{"text": "Domain text."}])
    (tmp_path / "text" / "b.csv").write_text("text\nMore domain text.\n", encoding="utf-8")
    report, examples = validate_dataset(tmp_path / "text")
    assert (
        report.format == "text"
        and report.trains_as == "text"
        and [e.text for e in examples] == ["Domain text.", "More domain text."]
    )
    assert (
        tokenize_example(tokenizer, examples[0]).input_ids
        == tokenizer("Domain text." + tokenizer.eos_token)["input_ids"]
    )


def test_report_and_quarantine_files(tmp_path):
    data = tmp_path / "data"
    write_jsonl(
        data / "a.jsonl", [chat("hello", "hi there"), chat("hello", "   "), "{not json", chat("second", "fine answer")]
    )
    (data / "b.jsonl").write_bytes(b'{"messages": [{"role": "user", "content": "\xff"}]}\n')
    report, examples = validate_dataset(data, tmp_path / "report")
    assert (report.rows_total, report.rows_valid, report.rows_quarantined) == (5, 2, 3)
    assert [e.line for e in examples] == [1, 4]
    saved = json.loads((tmp_path / "report" / "validation_report.json").read_text())
    assert {
        "rows_total",
        "rows_valid",
        "rows_quarantined",
        "format",
        "files",
        "quarantined",
        "fingerprint",
        "contract_version",
    } <= set(saved)
    assert saved["files"][0] == {
        "path": "a.jsonl",
        "format": "chat",
        "rows_total": 4,
        "rows_valid": 2,
        "rows_quarantined": 2,
        "rows_duplicate": 0,
        "top_reasons": {"blank_content": 1, "invalid_json": 1},
        "size_bytes": (data / "a.jsonl").stat().st_size,
        "sha256": saved["files"][0]["sha256"],
    }
    assert [(q["file"], q["line"], q["reason"]) for q in saved["quarantined"]] == [
        ("a.jsonl", 2, "blank_content"),
        ("a.jsonl", 3, "invalid_json"),
        ("b.jsonl", 1, "invalid_utf8"),
    ]
    assert saved["reasons"] == {"blank_content": 1, "invalid_json": 1, "invalid_utf8": 1}
    lines = [json.loads(line) for line in (tmp_path / "report" / "quarantine.jsonl").read_text().splitlines()]
    assert base64.b64decode(lines[2]["raw_base64"]) == (data / "b.jsonl").read_bytes().rstrip(b"\n")
    assert lines[1]["raw"] == "{not json"
    assert not list((tmp_path / "report").glob(".*.tmp"))  # written atomically, nothing left behind


def test_gates_name_the_report_and_the_first_reasons(tmp_path):
    data = tmp_path / "data"
    write_jsonl(
        data / "d.jsonl",
        [chat(f"q{i}", f"a{i}") for i in range(10)] + [chat("q", ""), "{", {"messages": []}, {"foo": 1}],
    )
    report, _ = validate_dataset(data, tmp_path / "report")
    with pytest.raises(DataGateError) as stopped:
        check_gates(report, min_valid_rows=1, max_invalid_fraction=0.0)
    message = str(stopped.value)
    assert message.startswith("training_data_path: 4 of 14 rows quarantined (28.6% > max_invalid_fraction 0.0%): ")
    assert "d.jsonl:11 blank_content; d.jsonl:12 invalid_json; d.jsonl:13 missing_field (+1 more)" in message
    assert message.endswith(f"see {tmp_path / 'report' / 'validation_report.json'}") and "\n" not in message
    check_gates(report, min_valid_rows=10, max_invalid_fraction=0.5)
    with pytest.raises(
        DataGateError,
        match=r"only 10 rows to train on \(10 valid; min_valid_rows is 11\); see .*validation_report.json",
    ):
        check_gates(report, min_valid_rows=11, max_invalid_fraction=0.5)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.jsonl").write_text("\n\n")
    empty, _ = validate_dataset(tmp_path / "empty")
    with pytest.raises(DataGateError, match=r"the 1 data file\(s\) hold no rows"):
        check_gates(empty, min_valid_rows=1, max_invalid_fraction=0.0)


def test_token_lengths_warn_or_quarantine(tmp_path, tokenizer):
    from trainer.model.tokens import tokenize_example

    data = tmp_path / "data"
    write_jsonl(data / "d.jsonl", [chat("short", "ok"), chat("long " * 40, "answer " * 40), chat("also short", "fine")])
    report, examples = validate_dataset(data, tokenizer=tokenizer, max_seq_length=32)
    counts = [len(tokenize_example(tokenizer, e).input_ids) for e in examples]
    assert counts[0] <= 32 < counts[1] and counts[2] <= 32
    assert (report.rows_valid, report.rows_quarantined, report.rows_overlong, report.rows_trainable) == (3, 0, 1, 2)
    assert [(o.file, o.line, o.tokens) for o in report.overlong] == [
        ("d.jsonl", 2, counts[1])
    ] and report.max_tokens == counts[1]
    with pytest.raises(DataGateError, match=r"only 2 rows to train on \(3 valid, 1 of them over max_seq_length"):
        check_gates(report, min_valid_rows=3, max_invalid_fraction=0.0)

    report, examples = validate_dataset(
        data, tmp_path / "q", tokenizer=tokenizer, max_seq_length=32, overlong_rows="quarantine"
    )
    assert (report.rows_valid, report.rows_quarantined, report.rows_overlong) == (2, 1, 1) and len(examples) == 2
    [q] = report.quarantined
    assert (q.line, q.reason) == (2, "too_many_tokens") and q.detail.startswith(
        f"{counts[1]} tokens > max_seq_length 32"
    )
    # No tokenizer: no token check, nothing reported.
    report, _ = validate_dataset(data)
    assert report.rows_overlong == 0 and report.max_seq_length is None and report.tokenizer is None


def test_fingerprint_is_order_independent_and_covers_paths_and_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_jsonl(a / "x.jsonl", [chat("1", "one")])
    write_jsonl(a / "sub" / "y.jsonl", [chat("2", "two")])
    write_jsonl(b / "sub" / "y.jsonl", [chat("2", "two")])  # created in the other order
    write_jsonl(b / "x.jsonl", [chat("1", "one")])
    fingerprint = validate_dataset(a)[0].fingerprint
    assert fingerprint == validate_dataset(b)[0].fingerprint == fingerprint_path(a) == fingerprint_path(b)
    (b / "sub" / "y.jsonl").rename(b / "y.jsonl")  # same bytes, another relative path
    assert fingerprint_path(b) != fingerprint
    (b / "y.jsonl").rename(b / "sub" / "y.jsonl")
    assert fingerprint_path(b) == fingerprint
    (b / "x.jsonl").write_bytes((b / "x.jsonl").read_bytes() + b"\n")  # one more byte, even a blank line
    assert fingerprint_path(b) != fingerprint
    (tmp_path / "a" / "README.md").write_text("not data")  # files that are not data don't count
    assert fingerprint_path(a) == fingerprint


def test_suites_are_consistent_with_the_validator(tmp_path):
    for name in SUITE_COLUMNS:
        doc = load_suite_document(name)
        assert doc["meta"]["contract_version"] and doc["expectations"]
        assert {e["meta"]["reason"] for e in doc["expectations"]} <= set(REASONS)
    assert contract_version() == "chat@3.0.0,instruction@2.1.0,prompt_completion@2.1.0,text@2.0.0"
    assert set(FORMATS) == {"chat", "sharegpt", "instruction", "prompt_completion", "text"}
    docs = (PROJECT_ROOT / "docs" / "data-contracts.md").read_text(encoding="utf-8")
    assert all(f"`{reason}`" in docs for reason in REASONS), [r for r in REASONS if f"`{r}`" not in docs]

    # A suite that checks a column the code does not build, or tags a reason outside the vocabulary,
    # is a contract bug: it fails loudly rather than passing every row.
    contracts = tmp_path / "contracts"
    shutil.copytree(PROJECT_ROOT / "data_contracts", contracts)
    doc = json.loads((contracts / "text.json").read_text())
    doc["expectations"][0]["kwargs"]["column"] = "body"
    (contracts / "text.json").write_text(json.dumps(doc))
    write_jsonl(tmp_path / "data" / "a.jsonl", [{"text": "x"}])
    with pytest.raises(ContractError, match="checks column 'body', which the validator does not build"):
        validate_dataset(tmp_path / "data", contracts_dir=contracts)
    doc["expectations"][0]["kwargs"]["column"] = "text"
    doc["expectations"][0]["meta"]["reason"] = "bad_vibes"
    (contracts / "text.json").write_text(json.dumps(doc))
    with pytest.raises(ContractError, match="meta.reason 'bad_vibes'"):
        validate_dataset(tmp_path / "data", contracts_dir=contracts)
    assert validator_digest(contracts) != validator_digest()


def test_an_edited_suite_changes_results_and_the_validator_digest(tmp_path):
    """The suites are data: tightening one (no code change) changes which rows pass."""
    contracts = tmp_path / "contracts"
    shutil.copytree(PROJECT_ROOT / "data_contracts", contracts)
    doc = json.loads((contracts / "text.json").read_text())
    doc["meta"]["contract_version"] = "2.1.0"
    next(e for e in doc["expectations"] if e["meta"]["reason"] == "too_long")["kwargs"]["max_value"] = 10
    (contracts / "text.json").write_text(json.dumps(doc))
    write_jsonl(tmp_path / "data" / "a.jsonl", [{"text": "short"}, {"text": "a bit longer than ten"}])
    report, _ = validate_dataset(tmp_path / "data", contracts_dir=contracts)
    assert report.contract_version == "text@2.1.0" and [(q.line, q.reason) for q in report.quarantined] == [
        (2, "too_long")
    ]


def test_unusable_inputs(tmp_path):
    with pytest.raises(DataUnusableError, match="does not exist"):
        validate_dataset(tmp_path / "missing")
    (tmp_path / "README.md").write_text("not data")
    with pytest.raises(DataUnusableError, match="no data files found"):
        validate_dataset(tmp_path)
    write_jsonl(tmp_path / "a.jsonl", [chat("q", "a")])
    write_jsonl(tmp_path / "b.jsonl", [{"text": "plain text row"}])
    with pytest.raises(DataUnusableError, match="mixes formats"):
        validate_dataset(tmp_path)
    # Forcing one format turns the other file's rows into wrong_format rows instead.
    report, _ = validate_dataset(tmp_path, dataset_format="text")
    assert [(q.file, q.reason) for q in report.quarantined] == [("a.jsonl", "wrong_format")]


def test_an_expectation_that_errors_or_names_no_rows_is_a_contract_error(tmp_path):
    contracts = tmp_path / "contracts"
    shutil.copytree(PROJECT_ROOT / "data_contracts", contracts)
    write_jsonl(tmp_path / "data" / "a.jsonl", [chat("q", "a")])
    doc = json.loads((contracts / "chat.json").read_text())
    broken = {
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "roles", "min_value": 1},
        "meta": {"reason": "too_long"},
    }
    (contracts / "chat.json").write_text(json.dumps({**doc, "expectations": doc["expectations"] + [broken]}))
    with pytest.raises(ContractError, match="expect_column_values_to_be_between on roles failed to run"):
        validate_dataset(tmp_path / "data", contracts_dir=contracts)
    table_level = {
        "type": "expect_table_row_count_to_be_between",
        "kwargs": {"min_value": 5},
        "meta": {"reason": "too_long"},
    }
    (contracts / "chat.json").write_text(json.dumps({**doc, "expectations": doc["expectations"] + [table_level]}))
    with pytest.raises(ContractError, match="failed without naming rows"):
        validate_dataset(tmp_path / "data", contracts_dir=contracts)


def test_the_token_check_needs_only_the_tokenizer(tmp_path, tokenizer):
    from trainer.config.settings import Settings
    from trainer.errors import SettingsError
    from trainer.model.assets import resolve_tokenizer_dir, tokenizer_digest

    tokenizer.save_pretrained(tmp_path / "tok")
    (tmp_path / "tok" / "config.json").write_text("{}")
    assert resolve_tokenizer_dir(Settings(base_model_assets_path=tmp_path / "tok")) == tmp_path / "tok"
    before = tokenizer_digest(tmp_path / "tok")
    (tmp_path / "tok" / "model.safetensors").write_bytes(b"weights do not count")
    assert tokenizer_digest(tmp_path / "tok") == before
    (tmp_path / "tok" / "tokenizer_config.json").write_text(
        (tmp_path / "tok" / "tokenizer_config.json").read_text() + " "
    )
    assert tokenizer_digest(tmp_path / "tok") != before
    # Offline (as in the tests) and not cached: one line saying what to do, before any download.
    with pytest.raises(
        SettingsError, match="the tokenizer of mistralai/Mistral-7B-Instruct-v0.3 is not in the Hugging Face cache"
    ):
        resolve_tokenizer_dir(Settings(base_model_architecture="mistral-7b"))


_TOKENIZE = """
import json, sys
from transformers import AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])  # not through trainer code: what follows is all of it
before = {name for name in sys.modules if name.split(".")[0] == "trainer"}
from trainer.data.formats import Example
from trainer.model.tokens import ensure_chat_template, tokenize_example

ensure_chat_template(tokenizer)
tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
call = {"type": "function", "function": {"name": "f", "arguments": {}}}
for example in (
    Example("a", "f", 1, messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                                   {"role": "assistant", "content": "a"}]),
    Example("b", "f", 2, messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "",
                                   "tool_calls": [call]}, {"role": "tool", "content": "r"},
                                   {"role": "assistant", "content": "a"}], tools=tools),
    Example("c", "f", 3, text="plain text"),
):
    tokenize_example(tokenizer, example)
print(json.dumps(sorted(m.__file__ for name, m in sys.modules.items()
                        if name.split(".")[0] == "trainer" and getattr(m, "__file__", None))))
"""


def test_both_token_caches_key_on_every_module_that_tokenizing_runs(tokenizer_folder):
    """A change to any code that renders or tokenizes a row must miss validation's cache and the
    prepared rows: every trainer module tokenizing a row loads (found by running it in a fresh
    interpreter) is among the files both keys hash."""
    import subprocess
    import sys
    from pathlib import Path

    from trainer.model.rendering_code import rendering_code

    done = subprocess.run(
        [sys.executable, "-c", _TOKENIZE, str(tokenizer_folder)], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = {Path(f).resolve() for f in json.loads(done.stdout.splitlines()[-1])}
    assert Path(PROJECT_ROOT, "trainer", "model", "templates.py").resolve() in loaded  # it did render
    assert loaded <= set(rendering_code()), sorted(map(str, loaded - set(rendering_code())))
