"""Training the Transformer classifiers: encodings, learning, selection on dev, caching."""

from __future__ import annotations

import pytest
import torch

from aine_lib.cache import ResultCache
from aine_lib.models.transformer_encoder import EncoderConfig, TransformerClassifier
from aine_lib.models.transformer_training import (TransformerTrainConfig, encode_words, evaluate_split,
                                                  scratch_vocabulary_ids, train_transformer, trained_transformer)
from tests.unit.test_rnn_models import planted_data


@pytest.fixture(scope="module")
def planted():
    data = planted_data(n_train=300, n_dev=100)
    vocab = data.build_vocabulary()
    enc = {s: encode_words(getattr(data, s), vocab, max_length=16) for s in ("train", "dev", "test")}
    return data, vocab, enc


def scratch(vocab, seed=0) -> TransformerClassifier:
    torch.manual_seed(seed)
    return TransformerClassifier(EncoderConfig(hidden=32, layers=2, heads=2, intermediate=64, max_positions=16,
                                               dropout=0.0, n_classes=2, **scratch_vocabulary_ids(vocab)))


FAST = TransformerTrainConfig(epochs=6, batch_size=16, lr=3e-3, warmup_fraction=0.1, patience=None)


def test_encode_words_adds_specials_and_maps_words(planted):
    data, vocab, enc = planted
    ids = scratch_vocabulary_ids(vocab)
    first = enc["train"].ids[0]
    tokens = data.train["tokens"].iloc[0][:14]
    assert first[0] == ids["cls_id"] and first[-1] == ids["sep_id"] and len(first) == len(tokens) + 2
    assert first[1:-1] == vocab.encode(tokens)
    assert enc["train"].word_index[0] == [-1, *range(len(tokens)), -1]
    assert max(len(x) for x in enc["train"].ids) <= 16


def test_scratch_transformer_learns_the_planted_task_and_keeps_the_best_dev_epoch(planted):
    _, vocab, enc = planted
    model = scratch(vocab)
    before = evaluate_split(model, enc["dev"], "cpu")["accuracy"]
    result = train_transformer(model, enc["train"], enc["dev"], FAST, seed=0, device="cpu")
    after = evaluate_split(model, enc["dev"], "cpu")
    assert after["accuracy"] > max(0.75, before + 0.15), (before, after)
    assert after["f1"] == pytest.approx(result.history["dev_f1"].max())
    assert result.history.loc[result.history["epoch"] == result.best_epoch, "dev_f1"].iloc[0] == \
        result.history["dev_f1"].max()


def test_trained_transformer_is_cached_and_reproducible(planted, tmp_path, monkeypatch):
    from aine_lib.models import transformer_training as tt

    _, vocab, enc = planted
    cfg = TransformerTrainConfig(epochs=1, batch_size=32, lr=1e-3, patience=None)
    cache = ResultCache(tmp_path)
    key = {"kind": "scratch", "data": "planted-test"}
    a, _ = trained_transformer(cache, key, lambda: scratch(vocab), enc["train"], enc["dev"], cfg, 0, "cpu")
    monkeypatch.setattr(tt, "train_transformer", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    b, _ = trained_transformer(cache, key, lambda: scratch(vocab, seed=9), enc["train"], enc["dev"], cfg, 0, "cpu")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(AssertionError, match="retrained"):
        trained_transformer(cache, key, lambda: scratch(vocab), enc["train"], enc["dev"], cfg, 1, "cpu")


def test_bfloat16_training_learns_like_float32_keeps_float32_weights_and_is_keyed(planted, tmp_path):
    from dataclasses import replace

    from aine_lib.config import ConfigError

    _, vocab, enc = planted
    models, results = {}, {}
    for precision in ("float32", "bfloat16"):
        models[precision] = scratch(vocab)
        results[precision] = train_transformer(models[precision], enc["train"], enc["dev"],
                                               replace(FAST, precision=precision), seed=0, device="cpu")
    assert all(p.dtype == torch.float32 for p in models["bfloat16"].parameters())
    f32, b16 = (evaluate_split(models[p], enc["dev"], "cpu")["accuracy"] for p in ("float32", "bfloat16"))
    assert b16 > 0.75 and abs(b16 - f32) < 0.1, (f32, b16)
    # a different computation: the weights differ, and so does the cache key
    assert not torch.equal(models["float32"].classifier.weight, models["bfloat16"].classifier.weight)
    cache, key = ResultCache(tmp_path), {"kind": "scratch", "data": "planted-test"}
    one = replace(FAST, epochs=1)
    trained_transformer(cache, key, lambda: scratch(vocab), enc["train"], enc["dev"], one, 0, "cpu")
    assert len(list(tmp_path.rglob("*.pt"))) == 1
    trained_transformer(cache, key, lambda: scratch(vocab), enc["train"], enc["dev"],
                        replace(one, precision="bfloat16"), 0, "cpu")
    assert len(list(tmp_path.rglob("*.pt"))) == 2
    with pytest.raises(ConfigError, match="float32.*bfloat16.*did you mean 'bfloat16'"):
        TransformerTrainConfig(precision="bfloat61")
