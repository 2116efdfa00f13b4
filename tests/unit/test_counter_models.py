"""Wiegreffe & Pinter models: the guided (diagnostic) classifier and the model-consistent adversary."""

from __future__ import annotations

import pytest
import torch

from aine_lib.config import ConfigError, CounterStudyConfig
from aine_lib.cache import ResultCache
from aine_lib.models.counter import (GuidedClassifier, compare_with_base, train_consistent_adversary,
                                     trained_guided_classifier)
from aine_lib.models.rnn_attention import AttentionClassifier, RNNClassifierConfig
from aine_lib.models.training import TrainConfig, collate, train_classifier
from tests.unit.test_rnn_models import planted_data, planted_model_cfg

TRAIN = TrainConfig(epochs=3, batch_size=16, lr=2e-2, weight_decay=1e-5)


@pytest.fixture(scope="module")
def planted():
    data = planted_data(n_train=240, n_dev=80)
    vocab = data.build_vocabulary()
    torch.manual_seed(0)
    base = AttentionClassifier(planted_model_cfg(len(vocab), "lstm"))
    train_classifier(base, data.train, data.dev, vocab, TRAIN, seed=0, device="cpu")
    return data, vocab, base.eval()


def test_guided_classifier_uses_the_guides_attention_and_trains_only_the_student(planted):
    data, vocab, base = planted
    guide_before = {k: v.clone() for k, v in base.state_dict().items()}
    torch.manual_seed(1)
    student = AttentionClassifier(RNNClassifierConfig("average", "additive", vocab_size=len(vocab), embed_dim=32,
                                                      hidden_dim=16, uniform_attention=True))
    student_before = {k: v.clone() for k, v in student.state_dict().items()}
    model = GuidedClassifier(student, base)
    train_classifier(model, data.train, data.dev, vocab, TRAIN, seed=1, device="cpu")
    assert all(torch.equal(v, guide_before[k]) for k, v in base.state_dict().items())
    assert any(not torch.equal(v, student_before[k]) for k, v in student.state_dict().items())
    assert not base.training and all(not p.requires_grad for p in base.parameters())
    batch = collate([vocab.encode(t) for t in data.dev["tokens"][:8]], [0] * 8)
    out = model(batch.ids, batch.mask)
    with torch.no_grad():
        assert torch.allclose(out.attention, base(batch.ids, batch.mask).attention, atol=1e-6)
    with pytest.raises(ValueError, match="guide"):
        model(batch.ids, batch.mask, attention=out.attention)


def test_guided_classifier_is_cached_with_its_student_weights_only(planted, tmp_path, monkeypatch):
    from aine_lib.models import counter

    data, vocab, base = planted
    cfg = RNNClassifierConfig("average", "additive", vocab_size=len(vocab), embed_dim=32, hidden_dim=16,
                              uniform_attention=True)
    cache = ResultCache(tmp_path)
    model, result = trained_guided_classifier(cache, data, cfg, base, {"guide": "base"}, TRAIN, 0, "cpu")
    assert all(not k.startswith("guide.") for k in result.state_dict)

    def no_training(*args, **kwargs):
        raise AssertionError("a cached guided model was retrained")

    monkeypatch.setattr(counter, "train_classifier", no_training)
    again, _ = trained_guided_classifier(cache, data, cfg, base, {"guide": "base"}, TRAIN, 0, "cpu")
    with pytest.raises(AssertionError, match="retrained"):   # another guide key is another model
        trained_guided_classifier(cache, data, cfg, base, {"guide": "other"}, TRAIN, 0, "cpu")
    batch = collate([vocab.encode(t) for t in data.dev["tokens"][:8]], [0] * 8)
    assert torch.equal(model(batch.ids, batch.mask).logits, again(batch.ids, batch.mask).logits)


def test_a_model_compared_with_itself_has_zero_tvd_and_jsd(planted):
    data, vocab, base = planted
    cmp = compare_with_base(base, base, data.test, vocab, "cpu")
    assert len(cmp) == len(data.test) and cmp["example"].tolist() == list(range(len(data.test)))
    assert float(cmp["tvd"].abs().max()) < 1e-6 and float(cmp["jsd"].max()) < 1e-6
    assert (cmp["correct"] == cmp["base_correct"]).all()


def test_adversary_trade_off_is_monotone_in_lambda(planted):
    """More weight on JSD buys a larger JSD to the base attention (the W&P trade-off curve)."""
    data, vocab, base = planted
    jsd, tvd = {}, {}
    for lam in (0.0, 1.0, 10.0):
        torch.manual_seed(5)
        adversary = AttentionClassifier(planted_model_cfg(len(vocab), "lstm"))
        if lam == 0.0:
            untrained_tvd = compare_with_base(adversary, base, data.test, vocab, "cpu")["tvd"].mean()
        result = train_consistent_adversary(adversary, base, data.train, data.dev, vocab, TRAIN, lam, seed=5,
                                            device="cpu")
        assert 1 <= result.best_epoch <= TRAIN.epochs
        assert result.history["dev_objective"].min() == pytest.approx(
            float(result.history.loc[result.history["epoch"] == result.best_epoch, "dev_objective"].iloc[0]))
        cmp = compare_with_base(adversary, base, data.test, vocab, "cpu")
        jsd[lam], tvd[lam] = cmp["jsd"].mean(), cmp["tvd"].mean()
    noise = 0.05   # nats: differences between adversaries of one lambda trained from other seeds are of this size
    assert jsd[1.0] >= jsd[0.0] - noise and jsd[10.0] >= jsd[1.0] - noise, jsd
    assert jsd[10.0] > jsd[0.0] + 0.1, jsd
    assert jsd[10.0] > 0.2, jsd          # a large lambda moves attention far (JSD <= ln 2 = 0.69)
    assert tvd[0.0] < untrained_tvd - 0.05, (tvd, untrained_tvd)   # lambda = 0 distils: outputs move towards the base


def test_counter_config_is_validated():
    with pytest.raises(ConfigError, match="variance_seeds"):
        CounterStudyConfig(variance_seeds=(0,))
    with pytest.raises(ConfigError, match="diagnostic_adversary_lambda"):
        CounterStudyConfig(adversary_lambdas=(0.0, 1.0), diagnostic_adversary_lambda=3.0)
    with pytest.raises(ConfigError, match=">= 0"):
        CounterStudyConfig(adversary_lambdas=(-1.0, 1.0), diagnostic_adversary_lambda=1.0)
