"""Attention classifiers and their training: properties that can fail."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from aine_lib.config import ConfigError, PlantedConfig
from aine_lib.data.planted import LABELS, generate_planted
from aine_lib.data.text import TextClassificationData
from aine_lib.cache import ResultCache
from aine_lib.models import training
from aine_lib.models.rnn_attention import AttentionClassifier, RNNClassifierConfig
from aine_lib.models.training import (TrainConfig, collate, encode_split, evaluate, predict, train_classifier,
                                      trained_classifier)

ENCODERS = ("lstm", "cnn", "average")
ATTENTIONS = ("additive", "dot")
VOCAB = 30


def tiny_model(encoder="lstm", attention="additive", seed=0, **kwargs) -> AttentionClassifier:
    torch.manual_seed(seed)
    cfg = RNNClassifierConfig(encoder=encoder, attention=attention, vocab_size=VOCAB, embed_dim=8,
                              hidden_dim=6, n_classes=3, **kwargs)
    return AttentionClassifier(cfg).eval()


def ragged_batch(seed=0, lengths=(7, 3, 1, 5)):
    gen = torch.Generator().manual_seed(seed)
    seqs = [torch.randint(2, VOCAB, (n,), generator=gen).tolist() for n in lengths]
    return seqs, collate(seqs, [0] * len(seqs))


# ----- the model -----------------------------------------------------------------

@pytest.mark.parametrize("encoder,attention", list(itertools.product(ENCODERS, ATTENTIONS)))
def test_attention_is_a_distribution_over_real_tokens(encoder, attention):
    model = tiny_model(encoder, attention)
    _, batch = ragged_batch()
    out = model(batch.ids, batch.mask)
    assert out.logits.shape == (4, 3) and out.hidden.shape == (4, 7, 12)
    assert torch.allclose(out.attention.sum(-1), torch.ones(4), atol=1e-6)
    assert bool((out.attention[~batch.mask] == 0).all())
    assert bool((out.attention[batch.mask] > 0).all())
    assert bool((out.hidden[~batch.mask] == 0).all())


def test_bilstm_equals_a_packed_bidirectional_lstm_with_the_same_weights():
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from aine_lib.models.rnn_attention import BiLSTMEncoder

    torch.manual_seed(3)
    ours = BiLSTMEncoder(embed_dim=5, hidden_dim=4)
    reference = torch.nn.LSTM(5, 4, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(reference, name).copy_(getattr(ours.forward_lstm, name))
            getattr(reference, name + "_reverse").copy_(getattr(ours.backward_lstm, name))
    lengths = torch.tensor([6, 2, 1, 4])
    mask = torch.arange(6)[None, :] < lengths[:, None]
    x = torch.randn(4, 6, 5) * mask.unsqueeze(-1)
    x_ref = x.clone().requires_grad_(True)
    x_ours = x.clone().requires_grad_(True)
    packed = pack_padded_sequence(x_ref, lengths, batch_first=True, enforce_sorted=False)
    expected, _ = pad_packed_sequence(reference(packed)[0], batch_first=True, total_length=6)
    got = ours(x_ours, mask)
    assert torch.allclose(got, expected, atol=1e-6)
    weights = torch.randn_like(expected)
    (expected * weights).sum().backward()
    (got * weights).sum().backward()
    assert torch.allclose(x_ours.grad, x_ref.grad, atol=1e-6)


def test_reverse_within_length_is_an_involution_that_keeps_padding():
    from aine_lib.models.rnn_attention import BiLSTMEncoder

    x = torch.arange(12.0).reshape(2, 6, 1)
    mask = torch.tensor([[True] * 4 + [False] * 2, [True] * 6])
    flipped = BiLSTMEncoder.reverse_within_length(x, mask)
    assert flipped[0, :, 0].tolist() == [3, 2, 1, 0, 4, 5]
    assert flipped[1, :, 0].tolist() == [11, 10, 9, 8, 7, 6]
    assert torch.equal(BiLSTMEncoder.reverse_within_length(flipped, mask), x)


@pytest.mark.parametrize("encoder,attention", [(e, "additive") for e in ENCODERS] + [("lstm", "dot")])
def test_padding_changes_nothing_at_real_positions(encoder, attention):
    model = tiny_model(encoder, attention, seed=1)
    short, long_ = [5, 9, 3, 7], [4, 8, 12, 16, 20, 24, 6, 2, 11, 13]
    alone = collate([short], [0])
    padded = collate([long_, short], [0, 0])
    a = model(alone.ids, alone.mask)
    b = model(padded.ids, padded.mask)
    assert torch.allclose(a.logits[0], b.logits[1], atol=1e-5)
    assert torch.allclose(a.attention[0], b.attention[1, :4], atol=1e-6)
    assert torch.allclose(a.hidden[0], b.hidden[1, :4], atol=1e-5)


def test_padding_id_content_is_ignored():
    """Whatever ids sit under the padding mask, the outputs are the same."""
    for encoder in ENCODERS:
        model = tiny_model(encoder, "dot", seed=2)
        _, batch = ragged_batch(3)
        junk = torch.where(batch.mask, batch.ids, torch.full_like(batch.ids, 17))
        assert torch.allclose(model(batch.ids, batch.mask).logits, model(junk, batch.mask).logits, atol=1e-6)


def test_uniform_attention_is_mask_over_length_and_has_no_parameters():
    model = tiny_model("cnn", "additive", uniform_attention=True)
    assert not any("scorer" in name for name, _ in model.named_parameters())
    _, batch = ragged_batch()
    out = model(batch.ids, batch.mask)
    expected = batch.mask.float() / batch.mask.sum(-1, keepdim=True)
    assert torch.equal(out.attention, expected)


def test_given_attention_overrides_the_computed_one():
    model = tiny_model("lstm", "additive")
    _, batch = ragged_batch()
    own = model(batch.ids, batch.mask)
    flipped = torch.where(batch.mask, 1.0 / own.attention.clamp_min(1e-9), torch.zeros_like(own.attention))
    flipped = flipped / flipped.sum(-1, keepdim=True)
    out = model(batch.ids, batch.mask, attention=flipped)
    assert out.attention is flipped
    assert torch.allclose(out.logits, model.decode(own.hidden, flipped), atol=1e-6)
    assert not torch.allclose(out.logits, own.logits, atol=1e-4)
    with pytest.raises(ValueError, match="shape"):
        model(batch.ids, batch.mask, attention=flipped[:, :3])


def _embedding_gradient(model, batch, detach):
    emb = model.embed(batch.ids).detach().requires_grad_(True)
    out = model(batch.ids, batch.mask, embeddings=emb, detach_attention=detach)
    torch.softmax(out.logits, -1)[:, 0].sum().backward()
    return emb.grad


def test_detach_attention_changes_embedding_gradients_only_when_attention_is_learned():
    _, batch = ragged_batch()
    model = tiny_model("lstm", "additive")
    attached, detached = _embedding_gradient(model, batch, False), _embedding_gradient(model, batch, True)
    assert not torch.allclose(attached, detached, atol=1e-7)
    # Same forward values either way.
    assert torch.equal(model(batch.ids, batch.mask, detach_attention=True).logits,
                       model(batch.ids, batch.mask).logits)
    uniform = tiny_model("lstm", "additive", uniform_attention=True)
    assert torch.equal(_embedding_gradient(uniform, batch, False), _embedding_gradient(uniform, batch, True))


def test_embeddings_initialised_from_the_given_matrix():
    cfg = RNNClassifierConfig(encoder="average", attention="dot", vocab_size=VOCAB, embed_dim=8, hidden_dim=4)
    matrix = np.random.default_rng(0).normal(size=(VOCAB, 8)).astype(np.float32)
    matrix[0] = 0.0
    model = AttentionClassifier(cfg, matrix)
    assert np.array_equal(model.embedding.weight.detach().numpy(), matrix)
    assert model.embedding.weight.requires_grad
    with pytest.raises(ValueError, match="embed_dim"):
        AttentionClassifier(cfg, matrix[:, :5])


def test_bad_configs_and_empty_rows_are_refused():
    with pytest.raises(ConfigError, match="encoder"):
        RNNClassifierConfig(encoder="gru", attention="dot", vocab_size=VOCAB)
    with pytest.raises(ConfigError, match="kernel"):
        RNNClassifierConfig(encoder="cnn", attention="dot", vocab_size=VOCAB, hidden_dim=5)
    model = tiny_model("lstm")
    _, batch = ragged_batch()
    mask = batch.mask.clone()
    mask[1] = False
    with pytest.raises(ValueError, match="at least one real token"):
        model(batch.ids, mask)
    with pytest.raises(ValueError, match="empty"):
        collate([[3], []], [0, 1])


# ----- training ------------------------------------------------------------------

def planted_data(n_train=300, n_dev=100) -> TextClassificationData:
    cfg = PlantedConfig(n_train=n_train, n_dev=n_dev, n_test=50, min_length=5, max_length=12, seed=3)
    splits = {"train": generate_planted(n_train, cfg, 3), "dev": generate_planted(n_dev, cfg, 4),
              "test": generate_planted(50, cfg, 5)}
    return TextClassificationData("planted", LABELS, splits, description="tiny planted", source="test")


FAST = TrainConfig(epochs=6, batch_size=16, lr=2e-2, weight_decay=1e-5)


def planted_model_cfg(vocab_size: int, encoder="average") -> RNNClassifierConfig:
    return RNNClassifierConfig(encoder=encoder, attention="additive", vocab_size=vocab_size, embed_dim=32,
                               hidden_dim=16, n_classes=2)


def test_collate_and_encode_split():
    data = planted_data(20, 10)
    vocab = data.build_vocabulary()
    ids = encode_split(data.train, vocab, max_length=4)
    assert all(len(x) == 4 for x in ids) and ids[0] == vocab.encode(data.train["tokens"][0][:4])
    batch = collate([[5, 6, 7], [8]], [1, 0])
    assert batch.ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch.mask.tolist() == [[True, True, True], [True, False, False]]
    assert batch.labels.tolist() == [1, 0] and batch.lengths.tolist() == [3, 1]


def test_predict_returns_rows_in_order_with_trimmed_attention():
    data = planted_data(20, 30)
    vocab = data.build_vocabulary()
    torch.manual_seed(0)
    model = AttentionClassifier(planted_model_cfg(len(vocab), "lstm")).eval()
    preds = predict(model, data.dev, vocab, "cpu", batch_size=7)
    for i in (0, 5, 17, 29):
        one = collate([vocab.encode(data.dev["tokens"][i])], [0])
        out = model(one.ids, one.mask)
        assert np.allclose(preds.probabilities[i], torch.softmax(out.logits, -1)[0].detach().numpy(), atol=1e-5)
        assert len(preds.attention[i]) == len(data.dev["tokens"][i])
        assert np.allclose(preds.attention[i], out.attention[0].detach().numpy(), atol=1e-6)
    metrics = evaluate(model, data.dev, vocab, "cpu")
    assert metrics["n"] == 30
    assert metrics["accuracy"] == pytest.approx(float((preds.predicted == data.dev["label"].to_numpy()).mean()))


def test_training_learns_the_planted_task_and_is_reproducible():
    data = planted_data()
    vocab = data.build_vocabulary()
    results = []
    for run in range(2):
        torch.manual_seed(0)
        model = AttentionClassifier(planted_model_cfg(len(vocab)))
        torch.manual_seed(100 + run)   # data order must come from `seed` alone, not the global RNG
        results.append(train_classifier(model, data.train, data.dev, vocab, FAST, seed=11, device="cpu"))
    first, second = results
    assert list(first.history.columns) == ["epoch", "train_loss", "dev_accuracy", "dev_f1", "seconds"]
    assert first.best_dev_accuracy > 0.9 and first.best_dev_f1 > 0.9
    assert first.best_epoch == int(first.history["epoch"][first.history["dev_f1"].idxmax()])
    assert first.state_dict.keys() == second.state_dict.keys()
    assert all(torch.equal(first.state_dict[k], second.state_dict[k]) for k in first.state_dict)
    assert all(v.device.type == "cpu" for v in first.state_dict.values())
    # The model is left holding the chosen weights.
    assert evaluate(model, data.dev, vocab, "cpu")["f1"] == pytest.approx(first.best_dev_f1)


def test_trained_classifier_trains_once_then_loads(tmp_path, monkeypatch):
    data = planted_data(60, 30)
    vocab = data.build_vocabulary(min_freq=2)   # the cached path must rebuild this same vocabulary
    cfg = planted_model_cfg(len(vocab))
    train_cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-2)
    calls = []
    real = training.train_classifier
    monkeypatch.setattr(training, "train_classifier", lambda *a, **k: calls.append(1) or real(*a, **k))
    cache = ResultCache(tmp_path / "cache")
    emb = np.random.default_rng(0).normal(size=(len(vocab), 32)).astype(np.float32)
    m1, r1 = trained_classifier(cache, data, cfg, train_cfg, seed=5, device="cpu", embeddings=emb)
    m2, r2 = trained_classifier(cache, data, cfg, train_cfg, seed=5, device="cpu", embeddings=emb)
    assert len(calls) == 1
    assert len(list((tmp_path / "cache" / "rnn_classifiers").glob("*.pt"))) == 1
    assert r1.best_epoch == r2.best_epoch
    assert r1.history.drop(columns="seconds").equals(r2.history.drop(columns="seconds"))
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])
    assert not m2.training
    assert evaluate(m1, data.dev, vocab, "cpu") == evaluate(m2, data.dev, vocab, "cpu")
    # Another seed is another entry.
    trained_classifier(cache, data, cfg, train_cfg, seed=6, device="cpu", embeddings=emb)
    assert len(calls) == 2


def test_early_stopping_stops_after_patience_epochs_without_dev_improvement():
    data = planted_data(40, 20)
    vocab = data.build_vocabulary()
    # lr so small the weights do not move: dev F1 never improves after epoch 1.
    cfg = TrainConfig(epochs=6, batch_size=16, lr=1e-12, patience=2)
    model = AttentionClassifier(planted_model_cfg(len(vocab)))
    result = train_classifier(model, data.train, data.dev, vocab, cfg, seed=0, device="cpu")
    assert list(result.history["epoch"]) == [1, 2, 3] and result.best_epoch == 1
    full = train_classifier(AttentionClassifier(planted_model_cfg(len(vocab))), data.train, data.dev, vocab,
                            TrainConfig(epochs=4, batch_size=16, lr=1e-12), seed=0, device="cpu")
    assert len(full.history) == 4
    with pytest.raises(ConfigError, match="patience"):
        TrainConfig(patience=0)
