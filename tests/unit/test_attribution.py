"""Attribution methods on the RNN classifiers: properties that can fail."""

import numpy as np
import pytest
import torch

from aine_lib.attribution import METHODS, attribute_batches, get_method
from aine_lib.data.text import Vocabulary
from aine_lib.models.rnn_attention import AttentionClassifier, RNNClassifierConfig
from aine_lib.models.training import collate


def _model(encoder="average", uniform=False, seed=0):
    torch.manual_seed(seed)
    cfg = RNNClassifierConfig(encoder=encoder, attention="additive", vocab_size=30, embed_dim=8,
                              hidden_dim=4, uniform_attention=uniform)
    return AttentionClassifier(cfg).eval()


def _batch():
    return collate([[2, 3, 4, 5, 6], [7, 8, 9], [10, 11, 12, 13]], [0, 1, 0])


def test_loo_on_average_encoder_with_uniform_attention_matches_analytic_value():
    model = _model(uniform=True)
    batch = _batch()
    scores = get_method("loo", model).attribute(batch, None)
    with torch.no_grad():
        hidden = model.encode(model.embed(batch.ids), batch.mask)   # context-free: h_t depends on token t only
        for i, n in enumerate(batch.mask.sum(1).tolist()):
            h = hidden[i, :n]
            full = torch.softmax(model.decoder(h.mean(0)), -1)
            for t in range(n):
                rest = torch.cat([h[:t], h[t + 1:]]).mean(0)
                expected = 0.5 * (torch.softmax(model.decoder(rest), -1) - full).abs().sum()
                assert scores[i, t].item() == pytest.approx(expected.item(), abs=1e-6)
    assert torch.all(scores[~batch.mask] == 0)


def test_loo_of_a_one_token_input_is_undefined_not_zero():
    model = _model()
    scores = get_method("loo", model).attribute(collate([[4], [5, 6]], [0, 1]), None)
    assert torch.isnan(scores[0, 0]) and not torch.isnan(scores[1, :2]).any()


def test_attention_method_returns_the_models_attention():
    model = _model(encoder="lstm")
    batch = _batch()
    with torch.no_grad():
        expected = model(batch.ids, batch.mask).attention
    assert torch.equal(get_method("attention", model).attribute(batch, None), expected)


def test_gradient_importance_matches_autograd_and_ignores_padding():
    model = _model(encoder="cnn")
    batch = _batch()
    target = torch.tensor([0, 1, 1])
    scores = get_method("gradient", model).attribute(batch, target)
    emb = model.embed(batch.ids).detach().requires_grad_(True)
    probs = torch.softmax(model(batch.ids, batch.mask, embeddings=emb, detach_attention=True).logits, -1)
    probs.gather(1, target[:, None]).sum().backward()
    expected = (emb.grad * emb).sum(-1).abs() * batch.mask
    assert torch.allclose(scores, expected, atol=1e-6)
    assert torch.all(scores[~batch.mask] == 0)


def test_attribute_batches_keeps_row_order_and_lengths():
    model = _model(encoder="lstm")
    vocab = Vocabulary(["<pad>", "<unk>"] + [f"w{i}" for i in range(28)])
    tokens = [["w1", "w2", "w3"], ["w4"], ["w5", "w6"]]
    labels = [0, 1, 0]
    batches = [collate([vocab.encode(t) for t in tokens[i:i + 2]], labels[i:i + 2]) for i in (0, 2)]
    result = attribute_batches(get_method("attention", model), batches, targets="label", tokens=tokens)
    assert [len(s) for s in result.scores] == [3, 1, 2]
    assert all(np.isclose(s.sum(), 1.0) for s in result.scores)
    assert result.tokens == tokens and result.targets == labels
    # row i holds example i's own scores: the same as explaining it alone (a shuffled row order fails)
    for i, t in enumerate(tokens):
        alone = get_method("attention", model).attribute(collate([vocab.encode(t)], [0]), None)[0]
        assert np.allclose(result.scores[i], alone.numpy(), atol=1e-6)
    predicted = attribute_batches(get_method("attention", model), batches)
    with torch.no_grad():
        expected = [int(model(b.ids, b.mask).logits.argmax(-1)[j]) for b in batches for j in range(len(b))]
    assert predicted.targets == expected


def test_unknown_method_lists_the_registry():
    with pytest.raises(ValueError, match="attention"):
        get_method("grad-cam", _model())
    assert {"attention", "gradient", "loo"} <= set(METHODS)
