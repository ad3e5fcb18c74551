"""What a person reads after a run: the run report, the loss curve, the comparison of versions."""
