"""`python -m flows.cli ...`: the same as the `llm-trainer` command."""

from flows.cli import main

main()
