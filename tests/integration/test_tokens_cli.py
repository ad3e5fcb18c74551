"""`llm-trainer tokens` as a user runs it (in this process, typer's CliRunner) on a model folder built
from each catalog model's real chat template (tests/templates.py): its JSON, highlighted text and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli import invoke
from tests.conftest import write_jsonl
from tests.templates import CATALOG_TEMPLATES, FOLDS_SYSTEM, check_trained, load_template_tokenizer, template_folder

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "datasets"
SYSTEM = "You are a support agent for Quillfeather."
ROWS = [
    {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Where is my refund?"},
            {"role": "assistant", "content": "<b>Sent</b> on Monday."},
            {"role": "user", "content": "How much?"},
            {"role": "assistant", "content": ".5 percent was kept as a fee."},
            {"role": "user", "content": "Thanks"},
            {"role": "assistant", "content": " You are welcome."},
        ]
    },
    {"instruction": "Say hi", "output": "Hi there!"},
]
ANSWERS = [["<b>Sent</b> on Monday.", ".5 percent was kept as a fee.", " You are welcome."], ["Hi there!"]]


def tokens(*args):
    return invoke("tokens", *args)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("templates")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    write_jsonl(folder / "chat.jsonl", ROWS[:1])
    write_jsonl(folder / "alpaca.jsonl", ROWS[1:])
    return folder


@pytest.mark.parametrize("name", CATALOG_TEMPLATES)
def test_json_shows_the_answers_and_their_end_of_turn_as_trained(root, data, name):
    result = tokens(data, "--model", template_folder(name, root), "--json", "--max-seq-length", "60")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["file"], r["line"]) for r in records] == [("alpaca.jsonl", 1), ("chat.jsonl", 1)]
    for record, answers in zip(records, ANSWERS[::-1], strict=True):
        check_trained(name, [s["text"] for s in record["segments"] if s["trained"]], answers)
        assert record["over_max_seq_length"] == (record["tokens"] > 60)
    chat = records[1]
    text = "".join(s["text"] for s in chat["segments"])
    assert SYSTEM in text and text.index(SYSTEM) < text.index("Where is my refund?")
    assert chat["folded_system"] == (name in FOLDS_SYSTEM)
    assert not any(s["trained"] and SYSTEM in s["text"] for s in chat["segments"])


def test_json_segments_concatenate_to_the_decoded_sequence(root, data):
    from trainer.data.contracts.validate import validate_dataset
    from trainer.model.tokens import tokenize_example

    name = "llama-3.1-8b-instruct"
    result = tokens(data, "--model", template_folder(name, root), "--json", "--rows", "1")
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    tokenizer = load_template_tokenizer(name, root)
    _, examples = validate_dataset(data)
    tokenized = tokenize_example(tokenizer, examples[0])
    decoded = tokenizer.decode(tokenized.input_ids, skip_special_tokens=False)
    assert "".join(s["text"] for s in record["segments"]) == decoded
    assert record["tokens"] == len(tokenized.input_ids) and decoded.startswith("<|begin_of_text|><|start_header_id|>")


def test_highlighted_text_with_a_legend_on_the_demo_model(tiny_model_dir, data):
    result = tokens(data, "--rows", "2")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "trained (the loss is computed on these tokens)" in out and "prompt and template text (not trained)" in out
    assert "chat template facts from catalog:tiny-llama: end of turn <|end|>" in out
    assert "── alpaca.jsonl:1 (" in out and "── chat.jsonl:1 (" in out
    # Not a terminal, so no colours: trained text is marked, and it is exactly the answers with <|end|>.
    assert "⟦Hi there!<|end|>⟧" in out and "⟦<b>Sent</b> on Monday.<|end|>⟧" in out
    assert "<|start|>user\nWhere is my refund?<|end|>" in out


def test_a_json_array_file_and_a_parquet_file_are_shown_as_validate_reads_them(root, tmp_path):
    """LLaMA-Factory / Alpaca files are JSON arrays, and Hub datasets come as Parquet: `tokens` reads both,
    names each row by its file and line (the line a record starts on; the row number in Parquet), and
    trains exactly the answers; Gemma has no system role, so the system prompt is folded and said so."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "files"
    folder.mkdir()
    alpaca = [ROWS[1], {"instruction": "Say bye", "input": "", "output": " <i>Bye</i>!"}]
    (folder / "alpaca.json").write_text("[\n" + ",\n".join(json.dumps(r) for r in alpaca) + "\n]\n")
    pq.write_table(pa.Table.from_pylist(ROWS[:1]), folder / "chat.parquet")
    name = "gemma-2-2b-it"
    model = template_folder(name, root)

    result = tokens(folder, "--model", model, "--json", "--rows", "5")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["file"], r["line"]) for r in records] == [("alpaca.json", 2), ("alpaca.json", 3), ("chat.parquet", 1)]
    for record, answers in zip(records, [ANSWERS[1], [" <i>Bye</i>!"], ANSWERS[0]], strict=True):
        check_trained(name, [s["text"] for s in record["segments"] if s["trained"]], answers)
    chat = "".join(s["text"] for s in records[2]["segments"])
    assert records[2]["folded_system"] and f"{SYSTEM}\n\nWhere is my refund?" in chat

    shown = tokens(folder, "--model", model, "--rows", "5")
    assert shown.returncode == 0, shown.stderr
    assert "showing 3 of 3 valid rows (0 quarantined)" in shown.stdout
    assert "── alpaca.json:3 (" in shown.stdout and "⟦<i>Bye</i>!<end_of_turn>⟧" in shown.stdout
    (header,) = [line for line in shown.stdout.splitlines() if line.startswith("── chat.parquet:1 (")]
    assert "system prompt folded into the first user turn" in header


def test_rows_the_template_cannot_render_get_one_line_and_exit_one(root, tmp_path):
    call = {"id": "call1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    row = {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call1", "content": "18 degrees"},
            {"role": "assistant", "content": "It is 18 degrees."},
        ]
    }
    plain = {"messages": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi there!"}]}
    write_jsonl(tmp_path / "tools.jsonl", [row, plain])
    for name, message in [
        ("gemma-2-2b-it", "this model's chat template does not render tool calls"),
    ]:
        result = tokens(tmp_path, "--model", template_folder(name, root))
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        (line,) = [line for line in result.stdout.splitlines() if "template_error" in line]
        assert line.startswith("── tools.jsonl:1  template_error: ") and message in line
        assert "── tools.jsonl:2 (" in result.stdout  # the other row is still shown
    as_json = tokens(tmp_path, "--model", template_folder("gemma-2-2b-it", root), "--json", "--rows", "1")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["error"].startswith("this model's chat template does not render tool calls")


@pytest.mark.parametrize(
    "args, needle",
    [
        (["missing-folder"], "missing-folder: does not exist"),
        (["{data}", "--model", "no-such-model"], "--model: unknown architecture 'no-such-model'"),
        (["{data}", "--model", "{empty}"], "--model {empty}: can't load its tokenizer"),
        # Preference data is not SFT rows: refused whole, with the mapping that trains the chosen answers.
        ([FIXTURES / "trl" / "preference_standard.jsonl"], "column_mapping"),
        (["{data}", "--model", "mistral-7b"], "--model: the tokenizer of mistralai/Mistral-7B-Instruct-v0.3"),
    ],
)
def test_unusable_input_is_one_error_line_and_exit_two(tmp_path, data, args, needle, monkeypatch):
    import huggingface_hub.constants

    # An empty Hugging Face cache, whatever this machine holds (read at call time).
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    empty = tmp_path / "empty-model"  # a model folder with no tokenizer files
    empty.mkdir()
    (empty / "config.json").write_text('{"model_type": "llama"}')
    args = [str(a).format(data=data, empty=empty) for a in args]
    result = tokens(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle.format(empty=empty) in lines[0], lines
    assert "base_model_assets_path" not in lines[0]  # a setting `tokens` has no flag for


def test_a_template_whose_loops_never_end_is_one_line_within_its_bound(root, data, tmp_path):
    """A model folder's chat template is a program: 10^10 loop iterations would run for hours. `tokens`
    ends with one line once RENDER_SECONDS pass (checked every half second), for any such template."""
    import shutil
    import time

    from trainer.model.templates import RENDER_SECONDS

    folder = tmp_path / "endless"
    shutil.copytree(template_folder("llama-3.1-8b-instruct", root), folder)
    (folder / "chat_template.jinja").write_text(
        "{% for a in range(100000) %}{% for b in range(100000) %}{{ '' }}{% endfor %}{% endfor %}{{ messages }}"
    )
    for path in folder.glob("tokenizer_config.json"):  # the template lives in chat_template.jinja only
        config = json.loads(path.read_text())
        config.pop("chat_template", None)
        path.write_text(json.dumps(config))
    started = time.monotonic()
    result = tokens(data, "--model", folder)
    took = time.monotonic() - started
    assert result.returncode != 0 and took < RENDER_SECONDS + 20, (took, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "did not finish rendering one conversation" in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "template, needle",
    [
        ("{% for a in range(1000000) %}{% endfor %}{{ messages }}", "Range too big"),
        ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "the chat template can't render this row"),
    ],
    ids=["huge-range", "recursive-macro"],
)
def test_a_template_the_sandbox_refuses_is_a_row_error_not_a_traceback(root, data, tmp_path, template, needle):
    import shutil

    folder = tmp_path / "hostile"
    shutil.copytree(template_folder("llama-3.1-8b-instruct", root), folder)
    (folder / "chat_template.jinja").write_text(template)
    for path in folder.glob("tokenizer_config.json"):
        config = json.loads(path.read_text())
        config.pop("chat_template", None)
        path.write_text(json.dumps(config))
    result = tokens(data, "--model", folder)
    assert result.returncode in (1, 2) and "Traceback" not in result.stdout + result.stderr
    assert needle in result.stdout + result.stderr, (result.stdout[-1500:], result.stderr[-1500:])


def test_tokens_takes_every_option_validate_takes():
    """Checked on the commands themselves: no option of `validate` is missing from `tokens`."""
    import typer.main

    from flows.cli import app

    group = typer.main.get_command(app)
    names = {name: {o for p in group.commands[name].params for o in p.opts} for name in ("validate", "tokens")}
    assert names["validate"] - names["tokens"] == set()
    assert {"--config", "--preset", "--set", "--map", "--format"} <= names["tokens"]


def test_mapped_csv_text_corpus_and_preference_data_are_previewed(tmp_path, root):
    csv = tmp_path / "qa.csv"
    csv.write_text("question,answer\nWhat is 2+2?,2+2 equals 4.\n", encoding="utf-8")
    shown = tokens(csv, "--map", "question=prompt", "--map", "answer=completion", "--json")
    assert shown.returncode == 0, shown.stderr
    [record] = [json.loads(line) for line in shown.stdout.splitlines()]
    assert "".join(s["text"] for s in record["segments"] if s["trained"]).startswith("2+2 equals 4.")

    corpus = FIXTURES / "llamafactory" / "wiki_demo.txt"
    text = tokens(corpus, "--format", "text", "--rows", "1", "--json")
    assert text.returncode == 0, text.stderr
    [record] = [json.loads(line) for line in text.stdout.splitlines()]
    assert all(s["trained"] for s in record["segments"] if s["text"].strip())  # a corpus: every token trained

    preference = FIXTURES / "trl" / "preference_standard.jsonl"
    refused = tokens(preference)
    assert refused.returncode == 2 and "--map chosen=completion" in refused.stderr
    mapped = tokens(preference, "--map", "chosen=completion", "--json", "--rows", "1")
    assert mapped.returncode == 0, mapped.stderr
    [record] = [json.loads(line) for line in mapped.stdout.splitlines()]
    assert "".join(s["text"] for s in record["segments"] if s["trained"]).startswith(" blue.")


def test_a_settings_file_gives_tokens_a_runs_data_settings(tmp_path, root):
    csv = tmp_path / "qa.csv"
    csv.write_text("q,a\nSay hi,Hi there!\n", encoding="utf-8")
    config = tmp_path / "settings.yaml"
    folder = template_folder("llama-3.1-8b-instruct", root)
    config.write_text(
        f"column_mapping: {{q: prompt, a: completion}}\nmax_seq_length: 16\nbase_model_assets_path: {folder}\n"
    )
    result = tokens(csv, "--config", config, "--json")
    assert result.returncode == 0, result.stderr
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["over_max_seq_length"] is True  # the settings' max_seq_length, counted in its tokenizer
    assert "<|eot_id|>" in "".join(s["text"] for s in record["segments"] if s["trained"])


def test_a_folder_with_a_tokenizer_alone_is_enough(tmp_path, root, data):
    import shutil

    folder = tmp_path / "tokenizer-only"
    shutil.copytree(template_folder("gemma-2-2b-it", root), folder)
    (folder / "config.json").unlink()
    shown = tokens(data, "--model", folder)
    assert shown.returncode == 0, shown.stderr
    assert "<end_of_turn>" in shown.stdout
    checked = invoke("validate", data, "--model", folder, "--max-seq-length", "512")
    assert checked.returncode == 0, checked.stderr


def test_tool_call_ids_are_derived_where_the_template_demands_its_own(root, tmp_path):
    """Mistral v0.3 raises unless every tool-call id is 9 alphanumeric characters: OpenAI ids are longer
    and ShareGPT function calls have none. Ids are derived from the row and the call index, the same
    for a call and its result, the same on every run; the report says how many rows."""
    import re

    from tests.templates import load_template_tokenizer
    from trainer.model.templates import render_prompt

    call = {
        "id": "call_Zq7xY2kP9mW4vR1t",
        "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
    }
    openai_row = {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_Zq7xY2kP9mW4vR1t", "content": "18 degrees"},
            {"role": "assistant", "content": "It is 18 degrees."},
        ]
    }
    sharegpt_row = {
        "conversations": [
            {"from": "human", "value": "Weather in Rome?"},
            {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Rome"}}'},
            {"from": "observation", "value": "21 degrees"},
            {"from": "gpt", "value": "It is 21 degrees."},
        ]
    }
    write_jsonl(tmp_path / "data" / "openai.jsonl", [openai_row])
    write_jsonl(tmp_path / "data" / "sharegpt.jsonl", [sharegpt_row])
    folder = template_folder("mistral-7b-instruct-v0.3", root)
    shown = tokens(tmp_path / "data", "--model", folder, "--json")
    assert shown.returncode == 0, (shown.stdout, shown.stderr)
    for line in shown.stdout.splitlines():
        text = "".join(s["text"] for s in json.loads(line)["segments"])
        ids = re.findall(r'"id": "([^"]*)"', text) + re.findall(r'"call_id": "([^"]*)"', text)
        ids += re.findall(r"\[TOOL_RESULTS\] \{\"content\": \"[^\"]*\", \"call_id\": \"([^\"]*)\"", text)
        assert ids and all(re.fullmatch(r"[0-9A-Za-z]{9}", i) for i in ids), text
        assert len(set(ids)) == 1, text  # the call and its result share one id
    tokenizer = load_template_tokenizer("mistral-7b-instruct-v0.3", root)
    once = render_prompt(tokenizer, openai_row["messages"])
    assert once == render_prompt(tokenizer, openai_row["messages"])  # deterministic
    checked = invoke("validate", tmp_path / "data", "--model", folder, "--max-seq-length", "1024")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "2 row(s) call tools and the chat template demands 9-character alphanumeric tool-call ids" in checked.stdout
