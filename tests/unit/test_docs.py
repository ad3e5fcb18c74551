from pathlib import Path

from trainer.config.reference import README_BEGIN, README_END, settings_markdown

REPO = Path(__file__).resolve().parents[2]


def test_readme_settings_table_is_generated_from_the_model():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index(README_BEGIN) + len(README_BEGIN) : readme.index(README_END)].strip()
    assert table == settings_markdown(), "run `llm-trainer settings --markdown` and paste it into README.md"


def test_readme_starts_with_the_two_commands():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    head = readme[: readme.index("## What the demo does")]
    assert "make demo" in head and "make test" in head
    assert "make test" in (REPO / ".ci" / "run").read_text()
