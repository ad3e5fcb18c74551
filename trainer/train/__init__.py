"""Training: the job, the Trainer subclass and callbacks, atomic checkpoints, data-parallel launch."""
