"""Ray start-up on a loaded machine: a local instance that times out is started again, other errors surface."""

from __future__ import annotations

import pytest

from aine_lib.study import executors


class FakeRay:
    def __init__(self, failures: int, message: str = "The current node timed out during startup. This could ..."):
        self.failures, self.message = failures, message
        self.inits = self.shutdowns = 0

    def init(self, address=None, **kwargs):
        self.inits += 1
        if self.inits <= self.failures:
            raise Exception(self.message)

    def shutdown(self):
        self.shutdowns += 1


def test_a_local_start_up_that_timed_out_is_retried():
    ray = FakeRay(failures=2)
    with pytest.warns(UserWarning, match="timed out"):
        executors._init_ray(ray, None, {})
    assert (ray.inits, ray.shutdowns) == (3, 2)


def test_start_up_gives_up_after_the_last_attempt_and_other_errors_are_not_retried():
    ray = FakeRay(failures=executors.RAY_START_ATTEMPTS)
    with pytest.raises(Exception, match="timed out"), pytest.warns(UserWarning):
        executors._init_ray(ray, None, {})
    assert ray.inits == executors.RAY_START_ATTEMPTS
    other = FakeRay(failures=1, message="port 6379 in use")
    with pytest.raises(Exception, match="port"):
        executors._init_ray(other, None, {})
    assert other.inits == 1
    remote = FakeRay(failures=1)                      # an existing cluster: never restarted behind its back
    with pytest.raises(Exception, match="timed out"):
        executors._init_ray(remote, "ray://head:10001", {})
    assert remote.inits == 1
