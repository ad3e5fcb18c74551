"""The Prefect flow and the `llm-trainer` command line."""
