"""The per-model registration lock (a Prefect global concurrency limit): one holder at a time per
model, across deployments, and independent between models."""

import pytest

from tasks.register import registry_lock

pytestmark = pytest.mark.slow  # trains the tiny model or runs the flow


def test_one_registration_at_a_time_per_model(prefect_server):
    with registry_lock("lock-test-model"):
        # A second run of the same model waits; here, gives up.
        with pytest.raises(TimeoutError), registry_lock("lock-test-model", timeout_seconds=1):
            pass
        with registry_lock("another model"):  # another model is not blocked
            pass
    with registry_lock("lock-test-model", timeout_seconds=5):  # released on exit
        pass
