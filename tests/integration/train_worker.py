"""Run trainer.training.train in its own process, as a crash test needs (SIGKILL ends the process).

    python tests/integration/train_worker.py OUTPUT_DIR MAX_STEPS [SEED [BATCHING]]

Writes OUTPUT_DIR/losses.json with the loss of every step this process trained.
"""

import json
import sys
from pathlib import Path

from trainer.config.loading import load_settings
from trainer.data.formats import Example
from trainer.data.readers import read_rows
from trainer.data.shapes import to_messages
from trainer.model.tiny import ensure_tiny_model
from trainer.train.job import TrainJob
from trainer.train.loop import train

RESUME_SETTINGS = [
    "batch_size=4",
    "save_every_n_iterations=3",
    "lora_dropout=0.1",
    "learning_rate=2e-3",
    "warmup_ratio=0.2",
]
# Not imported from tests/conftest.py: importing it gives this process a new, empty state folder
# (and the tiny model would be built again in every worker). This process uses the test session's,
# which it inherits through LLM_TRAINER_HOME.
DEMO_DATA = Path(__file__).resolve().parents[2] / "examples" / "data" / "customer-support" / "chat"
ROWS = 24  # 6 iterations per epoch at batch 4, so a 12-iteration run crosses an epoch boundary


def main() -> None:
    import torch

    torch.set_num_threads(1)  # repeatable arithmetic (see test_resume.py)
    output_dir, max_steps = Path(sys.argv[1]), int(sys.argv[2])
    seed = sys.argv[3] if len(sys.argv) > 3 else "42"
    batching = sys.argv[4] if len(sys.argv) > 4 else "auto"
    settings = load_settings(
        "demo",
        None,
        RESUME_SETTINGS
        + [f"max_steps={max_steps}", f"random_seed={seed}", f"output_dir={output_dir}", f"batching={batching}"],
    )
    # Read the rows directly: the bundled data is known valid, and importing GX costs seconds.
    path = DEMO_DATA / "conversations.jsonl"
    rows = list(read_rows(path, DEMO_DATA))[:ROWS]
    examples = [Example(r.key, r.file, r.line, messages=to_messages(r.record, "chat")) for r in rows]
    losses = {}
    result = train(
        TrainJob(settings, ensure_tiny_model(), examples[:ROWS], output_dir),
        metrics_sink=lambda m, step: losses.__setitem__(step, m["train_loss"]) if "train_loss" in m else None,
        show_progress=False,
    )
    (output_dir / "losses.json").write_text(json.dumps({"losses": losses, "resumed_from": result.resumed_from}))


if __name__ == "__main__":
    main()
