"""The per-model registration lock (a Prefect global concurrency limit): one holder at a time per
model, across deployments, and independent between models."""

import pytest

from tasks.common import registry_lock


def test_one_registration_at_a_time_per_model(prefect_server):
    with registry_lock("lock-test-model"):
        with pytest.raises(TimeoutError):  # a second run of the same model waits; here, gives up
            with registry_lock("lock-test-model", timeout_seconds=1):
                pass
        with registry_lock("another model"):  # another model is not blocked
            pass
    with registry_lock("lock-test-model", timeout_seconds=5):  # released on exit
        pass
