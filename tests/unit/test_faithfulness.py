"""ERASER faithfulness metrics, plausibility and agreement: properties that can fail."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from aine_lib.attribution import as_adapter
from aine_lib.evaluation.faithfulness import erase, faithfulness_curves
from aine_lib.metrics.faithfulness import aopc, plausibility_auprc, rank_agreement_matrix, summarise, top_k_mask
from aine_lib.models.protocol import ClassifierAdapter
from aine_lib.models.rnn_attention import AttentionClassifier, RNNClassifierConfig
from aine_lib.models.training import Batch, collate
from aine_lib.models.transformer_encoder import EncoderConfig, TransformerClassifier

CLS, SEP, MASK = 1, 2, 3


def tiny_transformer(seed=0) -> TransformerClassifier:
    torch.manual_seed(seed)
    cfg = EncoderConfig(vocab_size=40, hidden=16, layers=2, heads=2, intermediate=32, max_positions=16,
                        dropout=0.0, n_classes=2, cls_id=CLS, sep_id=SEP, mask_id=MASK)
    model = TransformerClassifier(cfg).eval()
    with torch.no_grad():   # larger weights than BERT's init, so outputs vary with the input
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(8.0)
    return model


def transformer_batch(seed=0, lengths=(10, 7, 4)) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.zeros(len(lengths), T, dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, 0], ids[b, n - 1] = CLS, SEP
        ids[b, 1:n - 1] = torch.randint(4, 40, (n - 2,), generator=gen)
    mask = torch.arange(T)[None] < torch.tensor(lengths)[:, None]
    return Batch(ids, mask, torch.zeros(len(lengths), dtype=torch.long))


def tiny_rnn() -> AttentionClassifier:
    torch.manual_seed(0)
    return AttentionClassifier(RNNClassifierConfig("lstm", "additive", vocab_size=40, embed_dim=8,
                                                   hidden_dim=6)).eval()


class OneTokenModel(nn.Module):
    """Logits ``[0, 3 * (number of real TRIGGER tokens)]``: only one token matters."""

    TRIGGER = 7

    def forward(self, ids, mask, embeddings=None):
        count = ((ids == self.TRIGGER) & mask).sum(-1).double()
        return SimpleNamespace(logits=torch.stack([torch.zeros_like(count), 3.0 * count], -1))


class OneTokenAdapter(ClassifierAdapter):
    """A user's own model brought to aine: a ClassifierAdapter subclass answering what the metric asks."""

    n_layers = n_heads = 0      # per-layer attention (so the attention_mask mode is allowed); never read here

    def logits(self, batch, embeddings=None, detach_attention=False):
        return self.model(batch.ids, batch.mask).logits


def probs(model, ids, mask):
    with torch.no_grad():
        return torch.softmax(model(ids, mask).logits.double(), -1)


# ----- top_k_mask -----------------------------------------------------------------

@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.2, 0.5, 0.75, 1.0])
def test_top_k_picks_ceil_fraction_of_real_non_special_tokens_and_the_highest(fraction):
    model, batch = tiny_transformer(), transformer_batch()
    special = as_adapter(model).special_mask(batch.ids)
    scores = torch.randn(batch.ids.shape, generator=torch.Generator().manual_seed(1))
    scores[special] = 100.0            # specials score highest: still never picked
    top = top_k_mask(scores, batch.mask, special, fraction)
    eligible = batch.mask & ~special
    for b in range(len(batch)):
        n = int(eligible[b].sum())
        assert int(top[b].sum()) == max(1, math.ceil(fraction * n))
        assert not bool((top[b] & ~eligible[b]).any())
        # every picked score >= every unpicked eligible score
        picked, rest = scores[b][top[b]], scores[b][eligible[b] & ~top[b]]
        if len(rest):
            assert picked.min() >= rest.max()


def test_top_k_breaks_ties_by_position_and_handles_float_fractions():
    mask = torch.ones(1, 100, dtype=torch.bool)
    top = top_k_mask(torch.zeros(1, 100), mask, None, 0.07)
    assert int(top.sum()) == 7                      # 0.07 * 100 = 7.000000000000001 must not give 8
    assert top[0, :7].all() and not top[0, 7:].any()
    # ties among equal scores go to the earlier position, also when padding scores higher
    scores = torch.tensor([[1.0, 5.0, 5.0, 5.0, 9.0, 9.0]])
    mask = torch.tensor([[True, True, True, True, False, False]])
    top = top_k_mask(scores, mask, None, 0.5)
    assert top.tolist() == [[False, True, True, False, False, False]]


def test_top_k_rejects_bad_fractions():
    with pytest.raises(ValueError, match="fractions"):
        top_k_mask(torch.zeros(1, 3), torch.ones(1, 3, dtype=torch.bool), None, 0.0)
    with pytest.raises(ValueError, match="fractions"):
        top_k_mask(torch.zeros(1, 3), torch.ones(1, 3, dtype=torch.bool), None, 1.5)


# ----- erase ----------------------------------------------------------------------------

def test_remove_keeps_specials_and_closes_up_rows():
    ids = torch.tensor([[CLS, 10, 11, 12, 13, SEP], [CLS, 20, 21, SEP, 0, 0]])
    mask = ids != 0
    drop = torch.tensor([[False, True, False, True, False, False], [False, False, True, False, False, False]])
    special = (ids == CLS) | (ids == SEP)
    new_ids, new_mask = erase(ids, mask, drop, "remove", mask_id=MASK, special=special)
    assert new_ids.tolist() == [[CLS, 11, 13, SEP, 0, 0], [CLS, 20, SEP, 0, 0, 0]]
    assert new_mask.tolist() == [[True] * 4 + [False] * 2, [True] * 3 + [False] * 3]
    assert ids.tolist()[0] == [CLS, 10, 11, 12, 13, SEP]        # input untouched


def test_mask_and_attention_mask_modes():
    ids = torch.tensor([[5, 6, 7, 0]])
    mask = ids != 0
    drop = torch.tensor([[False, True, False, False]])
    m_ids, m_mask = erase(ids, mask, drop, "mask", mask_id=1)
    assert m_ids.tolist() == [[5, 1, 7, 0]] and torch.equal(m_mask, mask)
    a_ids, a_mask = erase(ids, mask, drop, "attention_mask", mask_id=None)
    assert torch.equal(a_ids, ids) and a_mask.tolist() == [[True, False, True, False]]


def test_erase_refuses_bad_input():
    ids = torch.tensor([[CLS, 5, 6, SEP, 0]])
    mask = ids != 0
    special = (ids == CLS) | (ids == SEP)
    ok = torch.tensor([[False, True, False, False, False]])
    with pytest.raises(ValueError, match="unknown deletion mode"):
        erase(ids, mask, ok, "delete", mask_id=MASK)
    with pytest.raises(ValueError, match="special"):
        erase(ids, mask, torch.tensor([[True, False, False, False, False]]), "remove", mask_id=MASK,
              special=special)
    with pytest.raises(ValueError, match="padding"):
        erase(ids, mask, torch.tensor([[False, False, False, False, True]]), "mask", mask_id=MASK)
    with pytest.raises(ValueError, match="mask_id"):
        erase(ids, mask, ok, "mask", mask_id=None)


def test_faithfulness_curves_refuses_unknown_mode_and_attention_mask_on_rnn():
    model, batch = tiny_transformer(), transformer_batch()
    with pytest.raises(ValueError, match="unknown deletion mode"):
        faithfulness_curves(model, batch, torch.rand(batch.ids.shape), batch.labels, modes=("drop",))
    rnn = tiny_rnn()
    rb = collate([[5, 6, 7], [8, 9]], [0, 1])
    with pytest.raises(ValueError, match="only meaningful for Transformers"):
        faithfulness_curves(rnn, rb, torch.rand(rb.ids.shape), rb.labels, modes=("attention_mask",))


# ----- faithfulness_curves ---------------------------------------------------------------

def test_curve_columns_and_comprehensiveness_at_full_fraction_is_p_full_minus_only_specials():
    model, batch = tiny_transformer(), transformer_batch()
    scores = torch.rand(batch.ids.shape, generator=torch.Generator().manual_seed(0)) * batch.mask
    target = torch.tensor([0, 1, 1])
    df = faithfulness_curves(model, batch, scores, target, fractions=(0.2, 1.0))
    assert {"example", "fraction", "mode", "n_tokens", "k", "p_full", "comprehensiveness",
            "sufficiency"} <= set(df.columns)
    assert len(df) == 3 * 2 * 3 and set(df["mode"]) == {"remove", "mask", "attention_mask"}
    assert df["n_tokens"].tolist()[:6] == [8] * 6
    p_full = probs(model, batch.ids, batch.mask)[torch.arange(3), target].numpy()
    only_specials = torch.tensor([[CLS, SEP]])
    p_specials = probs(model, only_specials, torch.ones_like(only_specials, dtype=torch.bool))[0]
    row = df[(df["fraction"] == 1.0) & (df["mode"] == "remove")].sort_values("example")
    np.testing.assert_allclose(row["p_full"], p_full, atol=1e-6)
    np.testing.assert_allclose(row["comprehensiveness"], p_full - p_specials[target].numpy(), atol=1e-6)
    assert (row["k"] == row["n_tokens"]).all()
    # keeping the full set: nothing is erased, sufficiency is exactly 0 in every mode
    full = df[df["fraction"] == 1.0]
    assert np.abs(full["sufficiency"]).max() < 1e-9


def test_attention_mask_mode_changes_the_transformer_output():
    model, batch = tiny_transformer(), transformer_batch()
    scores = torch.rand(batch.ids.shape, generator=torch.Generator().manual_seed(3)) * batch.mask
    df = faithfulness_curves(model, batch, scores, batch.labels, fractions=(0.5,), modes=("attention_mask",))
    assert (df["comprehensiveness"].abs() > 1e-4).any()
    assert (df["sufficiency"].abs() > 1e-4).any()
    # and it is not the same operation as removal (positions are kept)
    df_r = faithfulness_curves(model, batch, scores, batch.labels, fractions=(0.5,), modes=("remove",))
    assert not np.allclose(df["comprehensiveness"], df_r["comprehensiveness"], atol=1e-6)


def test_batched_chunked_evaluation_equals_one_example_at_a_time():
    model, batch = tiny_transformer(), transformer_batch()
    scores = torch.rand(batch.ids.shape, generator=torch.Generator().manual_seed(4)) * batch.mask
    whole = faithfulness_curves(model, batch, scores, batch.labels, fractions=(0.1, 0.5), max_rows=5)
    for b in range(len(batch)):
        n = int(batch.mask[b].sum())
        one = Batch(batch.ids[b:b + 1, :n], batch.mask[b:b + 1, :n], batch.labels[b:b + 1])
        single = faithfulness_curves(model, one, scores[b:b + 1, :n], batch.labels[b:b + 1], fractions=(0.1, 0.5))
        part = whole[whole["example"] == b].reset_index(drop=True)
        for col in ("k", "p_full", "comprehensiveness", "sufficiency"):
            np.testing.assert_allclose(part[col], single[col], atol=1e-5)


def test_model_leaves_in_its_training_mode():
    model, batch = tiny_transformer(), transformer_batch()
    model.train()
    faithfulness_curves(model, batch, torch.rand(batch.ids.shape) * batch.mask, batch.labels, fractions=(0.5,))
    assert model.training


@pytest.mark.parametrize("mode", ["remove", "mask", "attention_mask"])
def test_scores_on_the_one_token_that_matters_give_its_full_effect_and_beat_random(mode):
    model = OneTokenAdapter(OneTokenModel())
    gen = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(12):
        seq = torch.randint(8, 30, (10,), generator=gen)
        seq[int(torch.randint(0, 10, (1,), generator=gen))] = OneTokenModel.TRIGGER
        rows.append(seq.tolist())
    batch = collate(rows, [1] * 12)
    target = torch.ones(12, dtype=torch.long)
    good = (batch.ids == OneTokenModel.TRIGGER).double()
    df = faithfulness_curves(model, batch, good, target, fractions=(0.1, 0.2), modes=(mode,), mask_id=1)
    p_full = 1 / (1 + math.exp(-3.0))
    np.testing.assert_allclose(df["comprehensiveness"], p_full - 0.5, atol=1e-9)
    np.testing.assert_allclose(df["sufficiency"], 0.0, atol=1e-9)
    random_comp = []
    for seed in range(5):
        noise = torch.rand(batch.ids.shape, generator=torch.Generator().manual_seed(seed))
        random_comp.append(faithfulness_curves(model, batch, noise, target, fractions=(0.1, 0.2), modes=(mode,),
                                               mask_id=1)["comprehensiveness"].mean())
    assert np.mean(random_comp) < (p_full - 0.5) * 0.6


def test_rnn_defaults_unk_for_mask_and_nan_when_nothing_is_left():
    model = tiny_rnn()
    batch = collate([[5, 6, 7, 8], [9]], [0, 1])
    scores = torch.rand(batch.ids.shape) * batch.mask
    df = faithfulness_curves(model, batch, scores, batch.labels, fractions=(0.5,))
    assert set(df["mode"]) == {"remove", "mask"}
    one = df[(df["example"] == 1)].set_index("mode")
    assert math.isnan(one.loc["remove", "comprehensiveness"])        # the only token removed: no input left
    # mask mode uses the unk id (1): comprehensiveness = p_full - p([unk])
    p_unk = probs(model, torch.tensor([[1]]), torch.tensor([[True]]))[0, 1].item()
    assert one.loc["mask", "comprehensiveness"] == pytest.approx(one.loc["mask", "p_full"] - p_unk, abs=1e-6)
    assert abs(one.loc["mask", "sufficiency"]) < 1e-9


# ----- aopc and summarise ------------------------------------------------------------------

def test_aopc_is_the_mean_over_fractions_per_example_and_mode():
    model, batch = tiny_transformer(), transformer_batch()
    scores = torch.rand(batch.ids.shape, generator=torch.Generator().manual_seed(5)) * batch.mask
    df = faithfulness_curves(model, batch, scores, batch.labels)
    df["method"] = "random"
    out = aopc(df)
    assert len(out) == 3 * 3 and (out["n_fractions"] == 5).all()
    assert {"example", "mode", "method", "comprehensiveness", "sufficiency"} <= set(out.columns)
    sel = df[(df["example"] == 1) & (df["mode"] == "mask")]
    got = out[(out["example"] == 1) & (out["mode"] == "mask")].iloc[0]
    assert got["comprehensiveness"] == pytest.approx(sel["comprehensiveness"].mean())
    assert got["sufficiency"] == pytest.approx(sel["sufficiency"].mean())
    with pytest.raises(ValueError, match="several rows"):
        aopc(pd.concat([df, df]))


def test_summarise_means_and_cis():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"mode": np.repeat(["a", "b"], 40), "example": np.tile(np.arange(20), 4),
                       "comprehensiveness": rng.normal(size=80), "sufficiency": rng.normal(size=80)})
    df.loc[0, "sufficiency"] = np.nan
    out = summarise(df, ["mode"], seed=0)
    assert list(out.columns) == ["mode", "metric", "value", "ci_low", "ci_high", "n"]
    a = out[(out["mode"] == "a") & (out["metric"] == "sufficiency")].iloc[0]
    assert a["n"] == 39 and a["value"] == pytest.approx(df[df["mode"] == "a"]["sufficiency"].mean())
    assert (out["ci_low"] <= out["value"]).all() and (out["value"] <= out["ci_high"]).all()
    clustered = summarise(df, ["mode"], seed=0, clusters="example")
    np.testing.assert_allclose(clustered["value"], out["value"])
    assert summarise(df, ["mode"], seed=0).equals(out)                 # seeded


# ----- plausibility and agreement ---------------------------------------------------------

def test_plausibility_auprc():
    rationale = [np.array([0, 1, 1, 0, 0]), np.array([1, 0, 0]), np.zeros(4), np.ones(2)]
    perfect = [r * 2.0 + 0.1 for r in rationale]
    ap = plausibility_auprc(perfect, rationale)
    np.testing.assert_allclose(ap[:2], 1.0)
    assert np.isnan(ap[2]) and np.isnan(ap[3])
    worst = plausibility_auprc([-s for s in perfect[:2]], rationale[:2])
    assert (worst < 1.0).all()
    with pytest.raises(ValueError, match="scores but"):
        plausibility_auprc([np.zeros(3)], [np.zeros(4)])


def test_rank_agreement_matrix():
    rng = np.random.default_rng(0)
    a = [rng.normal(size=n) for n in (5, 8, 12)]
    m = rank_agreement_matrix({"a": a, "same": [2 * x + 1 for x in a], "reversed": [-x for x in a],
                               "noise": [rng.normal(size=len(x)) for x in a]})
    assert m.loc["a", "same"] == pytest.approx(1.0) and m.loc["a", "reversed"] == pytest.approx(-1.0)
    np.testing.assert_allclose(m.to_numpy(), m.to_numpy().T)
    np.testing.assert_allclose(np.diag(m.to_numpy()), 1.0)
    assert -1 < m.loc["a", "noise"] < 1
