"""Explanation methods on Transformers (and the model-agnostic ones on both families): properties that can fail."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aine_lib.attribution import (ALL_NAMES, GENERIC_METHODS, METHODS, RNN_METHODS, SEQ2SEQ_METHODS,
                                  TRANSFORMER_METHODS, VARIANTS, MethodNotApplicable, as_adapter, get_method)
from aine_lib.attribution.propagation import attention_flow, residual_attention, rollout
from aine_lib.models.rnn_attention import AttentionClassifier, RNNClassifierConfig
from aine_lib.models.training import Batch
from aine_lib.models.transformer_encoder import EncoderConfig, TransformerClassifier

CLS, SEP = 1, 2


def tiny_transformer(seed=0) -> TransformerClassifier:
    torch.manual_seed(seed)
    cfg = EncoderConfig(vocab_size=40, hidden=16, layers=2, heads=2, intermediate=32, max_positions=16,
                        dropout=0.0, n_classes=2, cls_id=CLS, sep_id=SEP, mask_id=3)
    model = TransformerClassifier(cfg).eval()
    with torch.no_grad():   # larger weights than BERT's init, so outputs and attentions actually vary
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(8.0)
    return model


def transformer_batch(seed=0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    lengths = [8, 5, 3]
    ids = torch.zeros(3, 8, dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, 0], ids[b, n - 1] = CLS, SEP
        ids[b, 1:n - 1] = torch.randint(4, 40, (n - 2,), generator=gen)
    mask = torch.arange(8)[None] < torch.tensor(lengths)[:, None]
    return Batch(ids, mask, torch.zeros(3, dtype=torch.long))


def tiny_rnn(encoder="lstm") -> AttentionClassifier:
    torch.manual_seed(0)
    return AttentionClassifier(RNNClassifierConfig(encoder, "additive", vocab_size=40, embed_dim=8,
                                                   hidden_dim=6)).eval()


FAST = {"integrated_gradients": {"n_steps": 16}, "lime": {"n_samples": 40}, "kernel_shap": {"n_samples": 40},
        "flow": {}}


@pytest.mark.parametrize("name", TRANSFORMER_METHODS + GENERIC_METHODS)
def test_every_method_gives_one_finite_score_per_token_on_a_transformer(name):
    model, batch = tiny_transformer(), transformer_batch()
    target = model(batch.ids, batch.mask).logits.argmax(-1)
    scores = get_method(name, model, **FAST.get(name, {})).attribute(batch, target)
    assert scores.shape == batch.ids.shape
    assert torch.isfinite(scores).all()
    assert bool((scores[~batch.mask] == 0).all())
    assert bool((scores[batch.mask & ~as_adapter(model).special_mask(batch.ids)] != 0).any())


@pytest.mark.parametrize("name", GENERIC_METHODS + RNN_METHODS)
def test_generic_methods_also_run_on_the_rnn_models(name):
    model = tiny_rnn()
    ids = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 0, 0]])
    batch = Batch(ids, ids != 0, torch.zeros(2, dtype=torch.long))
    scores = get_method(name, model, **FAST.get(name, {})).attribute(batch, torch.tensor([0, 1]))
    assert scores.shape == ids.shape and bool((scores[~batch.mask] == 0).all())


def test_transformer_methods_refuse_an_rnn_with_a_clear_error():
    for name in ("rollout", "flow", "norm", "grad_attention", "chefer"):
        with pytest.raises(MethodNotApplicable, match="per layer and head"):
            get_method(name, tiny_rnn())
    with pytest.raises(ValueError, match="unknown attribution method"):
        get_method("saliency_maps", tiny_rnn())
    # every name the config accepts is a method or a named variant of one, and nothing else is
    assert set(ALL_NAMES) == set(TRANSFORMER_METHODS + GENERIC_METHODS + RNN_METHODS + SEQ2SEQ_METHODS)
    assert set(ALL_NAMES) == set(METHODS) | set(VARIANTS)
    assert all(base in METHODS for base, _ in VARIANTS.values())


def test_integrated_gradients_are_complete():
    """Sum over tokens of IG = f(x) - f(reference) for the target probability (Sundararajan et al. 2017)."""
    model, batch = tiny_transformer(1), transformer_batch(1)
    target = torch.tensor([0, 1, 0])
    ig = get_method("integrated_gradients", model, n_steps=128)
    scores = ig.attribute(batch, target)
    with torch.no_grad():
        p = torch.softmax(model(batch.ids, batch.mask).logits, -1).gather(1, target[:, None]).squeeze(1)
        ref = as_adapter(model).reference_ids(batch.ids, batch.mask)
        p0 = torch.softmax(model(ref, batch.mask).logits, -1).gather(1, target[:, None]).squeeze(1)
    assert torch.allclose(scores.sum(1), p - p0, atol=2e-3), (scores.sum(1), p - p0)
    assert float(ig.last_delta.abs().max()) < 2e-3
    special = as_adapter(model).special_mask(batch.ids)
    assert bool(special[:, 0].all())                                      # [CLS] is special, so this can fail
    assert bool((scores[special] == 0).all())                           # specials equal their reference


def test_rollout_of_identity_attention_is_identity_and_rows_stay_distributions():
    B, H, T = 2, 3, 5
    eye = torch.eye(T).expand(B, H, T, T)
    mask = torch.ones(B, T, dtype=torch.bool)
    assert torch.allclose(rollout((eye, eye, eye), mask), torch.eye(T).expand(B, T, T))
    # the order matters: layer 2's mixing is applied after layer 1's (R = Ã_2 Ã_1)
    gen = torch.Generator().manual_seed(0)
    a1 = torch.softmax(torch.randn(1, H, T, T, generator=gen) * 3, -1)
    a2 = torch.softmax(torch.randn(1, H, T, T, generator=gen) * 3, -1)
    ones = torch.ones(1, T, dtype=torch.bool)
    expected = residual_attention(a2, ones) @ residual_attention(a1, ones)
    assert torch.allclose(rollout((a1, a2), ones), expected, atol=1e-6)
    assert not torch.allclose(rollout((a1, a2), ones), rollout((a2, a1), ones), atol=1e-3)
    model, batch = tiny_transformer(2), transformer_batch(2)
    out = model(batch.ids, batch.mask)
    r = rollout(out.attentions, batch.mask)
    assert torch.allclose(r.sum(-1), torch.ones(3, 8), atol=1e-5)
    assert bool((r >= 0).all())


def test_flow_is_nonnegative_bounded_and_exact_on_one_layer():
    rng = np.random.default_rng(0)
    a = rng.random((5, 5)) ** 3
    a /= a.sum(1, keepdims=True)
    # one layer: the only path from input j to [CLS] is the edge j -> CLS, so the flow is its capacity
    assert np.allclose(attention_flow([a], edge_threshold=0.0), a[0], atol=1e-6)
    layers = []
    for _ in range(3):
        m = rng.random((6, 6)) ** 3
        layers.append(m / m.sum(1, keepdims=True))
    flows = attention_flow(layers, edge_threshold=0.0)
    assert (flows >= 0).all() and (flows <= 1 + 1e-6).all()
    # a path's flow can never exceed the smallest capacity into [CLS] from the last layer... in total it is <= 1
    # and each token's flow is at least its best single path (the product of a chain is a lower bound here:
    # the min over a chain of capacities bounds a feasible flow)
    j = 2
    best_chain = max(min(layers[0][k, j], layers[1][m, k], layers[2][0, m]) for k in range(6) for m in range(6))
    assert flows[j] >= best_chain - 1e-6


def test_norm_based_scores_equal_a_direct_computation():
    model, batch = tiny_transformer(3), transformer_batch(3)
    scores = get_method("norm", model).attribute(batch, None)
    out = model(batch.ids, batch.mask)
    layer = model.layers[-1].attention
    cfg = model.cfg
    b = 0
    for j in range(8):
        total = torch.zeros(cfg.hidden)
        for h in range(cfg.heads):
            w = layer.output.weight[:, h * cfg.head_dim:(h + 1) * cfg.head_dim]
            total += out.attentions[-1][b, h, 0, j] * (w @ out.values[-1][b, h, j])
        assert float(scores[b, j]) == pytest.approx(float(total.norm()), rel=1e-4)


def test_residual_attention_rows_are_distributions():
    model, batch = tiny_transformer(4), transformer_batch(4)
    a = residual_attention(model(batch.ids, batch.mask).attentions[0], batch.mask)
    assert torch.allclose(a.sum(-1), torch.ones(3, 8), atol=1e-6)


def test_random_and_sampled_methods_are_deterministic_per_example():
    model, batch = tiny_transformer(5), transformer_batch(5)
    target = torch.tensor([0, 0, 1])
    for name in ("random", "lime"):
        m = get_method(name, model, **FAST.get(name, {}))
        a, b = m.attribute(batch, target), m.attribute(batch, target)
        assert torch.equal(a, b), name


def test_heatmap_rows_show_their_scale_and_draw_numerical_zeros_white():
    """Each row is scaled by its own maximum; a row of floating-point noise must not be painted full colour."""
    import matplotlib

    matplotlib.use("Agg")
    from aine_lib.report import plots

    example = {"tokens": ["a", "b", "c"], "title": "t", "rationale": None,
               "scores": {"big": np.array([0.5, -1.0, 0.25]), "noise": np.array([3e-9, -1e-9, 2e-9])}}
    fig = plots.attribution_heatmaps([example], ["big", "noise"])
    ax = fig.axes[0]
    drawn = ax.get_images()[0].get_array()
    assert np.allclose(drawn[0], [0.5, -1.0, 0.25]) and np.allclose(drawn[1], 0.0)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["big (max 1)", "noise (all ~ 0)"]


def test_training_curves_draw_one_line_per_seed():
    """Seeds are separate runs: a line through all of them would join one seed's last epoch to the next's first."""
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    from aine_lib.report import plots

    rows = [{"task": "copy", "seed": seed, "epoch": e, "train_loss": 2.0 / e, "dev_loss": 1.0 / e}
            for seed, epochs in ((0, 3), (1, 5)) for e in range(1, epochs + 1)]
    fig = plots.training_curves(pd.DataFrame(rows))
    lines = fig.axes[0].get_lines()
    assert sorted(len(line.get_xdata()) for line in lines) == [3, 3, 5, 5]
    assert all(np.all(np.diff(line.get_xdata()) > 0) for line in lines)   # no line runs back in epochs
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["train (label-smoothed)", "dev"]


def test_flow_equals_a_networkx_max_flow_reference_exactly():
    import networkx as nx

    rng = np.random.default_rng(3)
    L, T = 3, 9
    layers = []
    for _ in range(L):
        m = rng.random((T, T)) ** 4
        layers.append(m / m.sum(1, keepdims=True))
    graph = nx.DiGraph()
    for layer, a in enumerate(layers, start=1):
        for i in ([0] if layer == L else range(T)):
            for j in range(T):
                graph.add_edge((layer - 1, j), (layer, i), capacity=float(a[i, j]))
    reference = [nx.maximum_flow_value(graph, (0, j), (L, 0)) for j in range(T)]
    assert np.allclose(attention_flow(layers), reference, atol=1e-9, rtol=0)
    # dropping weak edges is an approximation, and says so by differing
    assert not np.allclose(attention_flow(layers, edge_threshold=0.2), reference, atol=1e-6)
