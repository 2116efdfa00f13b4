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


def test_models_trained_side_by_side_equal_models_trained_here_bit_for_bit(tmp_path):
    """train_grid through a pool of two processes, then the same grid trained in this process: every model
    trains with one torch thread (repro.TRAINING_THREADS), so the cached weights are identical, and the
    serial study finds the pool's models in the cache instead of training again."""
    import torch

    from aine_lib.config import load_config
    from aine_lib.experiments import jain_wallace as jw
    from tests.conftest import REPO

    overrides = {"data.datasets": ["uci_sentiment"], "data.max_train_examples": 120, "rnn.encoders": ["cnn", "average"],
                 "rnn.attentions": ["additive"], "rnn.seeds": [0], "rnn.epochs": 1, "progress": False}
    pooled = load_config(REPO / "configs" / "smoke.yaml", overrides | {"cache_dir": str(tmp_path / "pool")})
    here = load_config(REPO / "configs" / "smoke.yaml", overrides | {"cache_dir": str(tmp_path / "here")})
    jw.train_grid(jw.RNNStudy(pooled), executors.LocalExecutor(2))
    trained = sorted((tmp_path / "pool").rglob("*.pt"))
    assert len(trained) == 2
    torch.set_num_threads(2)
    serial = {(m.encoder, m.seed): m.model for m in jw.RNNStudy(here).models()}
    loaded = {(m.encoder, m.seed): m.model for m in jw.RNNStudy(pooled).models()}
    assert sorted((tmp_path / "pool").rglob("*.pt")) == trained            # nothing trained again
    for key, model in serial.items():
        for (name, a), b in zip(model.state_dict().items(), loaded[key].state_dict().values()):
            assert torch.equal(a, b), (key, name)
