"""Inside the Transformers (notebooks 16-17): head ablation, pruning, probes, activation maximisation,
the glass box and explanation ensembles. Properties that can fail, on a tiny planted study (no downloads)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aine_lib.attribution import Explanation
from aine_lib.config import ConfigError, load_config
from aine_lib.experiments import internals as ins
from aine_lib.experiments import internals_neurons as neu
from aine_lib.experiments import ensembles as ens
from aine_lib.experiments import transformers as tr
from aine_lib.experiments import transformer_faithfulness as trf
from aine_lib.models.transformer_encoder import EncoderConfig, TransformerClassifier
from tests.unit.test_seq2seq import batch as s2s_batch
from tests.unit.test_seq2seq import tiny as tiny_seq2seq

TINY = ("  planted: {n_train: 400, n_dev: 100, n_test: 200, seed: 7}\n"
        "transformer:\n  scratch: {hidden: 32, layers: 2, heads: 2, intermediate: 64, dropout: 0.0, epochs: 6,"
        " lr: 0.003}\n  max_length: 32\n  batch_size: 16\n  patience: null\n  max_analysis_examples: 200\n"
        "  fractions: [0.1, 0.5]\n  deletion_modes: [remove]\n  ig_steps: 4\n")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("internals")
    path = root / "configs" / "tiny.yaml"
    path.parent.mkdir()
    # the planted block replaces the conftest one: written out in full here
    path.write_text("name: tiny\noutput_dir: out\ndata:\n  datasets: [planted]\n" + TINY)
    cfg = load_config(path, overrides={"cache_dir": str(root / "cache"), "progress": False})
    return tr.TransformerStudy(cfg)


@pytest.fixture(scope="module")
def trained(study):
    return study.train("planted", "scratch", 0)


def tiny_classifier(seed=0) -> TransformerClassifier:
    torch.manual_seed(seed)
    return TransformerClassifier(EncoderConfig(hidden=16, layers=2, heads=4, intermediate=32, max_positions=12,
                                               dropout=0.0, n_classes=2, vocab_size=30, pad_id=0, cls_id=1,
                                               sep_id=2, mask_id=3)).eval()


# ----- head masks ------------------------------------------------------------------------------------

def test_ablating_no_head_reproduces_the_logits_exactly():
    model = tiny_classifier()
    ids = torch.randint(4, 30, (3, 10), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[1, 7:] = False
    with torch.no_grad():
        plain = model(ids, mask).logits
        ones = model(ids, mask, head_mask=torch.ones(2, 4)).logits
        one_off = torch.ones(2, 4)
        one_off[1, 2] = 0.0
        ablated = model(ids, mask, head_mask=one_off).logits
    assert torch.equal(plain, ones)
    assert not torch.allclose(plain, ablated, atol=1e-6)


def test_a_zero_head_mask_equals_zeroing_that_heads_output_weights():
    model = tiny_classifier()
    ids = torch.randint(4, 30, (2, 9), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids, dtype=torch.bool)
    head_mask = torch.ones(2, 4)
    head_mask[0, 1] = 0.0
    with torch.no_grad():
        masked = model(ids, mask, head_mask=head_mask).logits
        dh = model.cfg.hidden // model.cfg.heads
        model.layers[0].attention.output.weight[:, dh:2 * dh] = 0.0
        surgery = model(ids, mask).logits
    assert torch.allclose(masked, surgery, atol=1e-6)


def test_seq2seq_head_masks_of_ones_reproduce_the_logits_and_a_zero_changes_them():
    model, b = tiny_seq2seq(), s2s_batch()
    cfg = model.cfg
    ones = {"encoder_self": torch.ones(cfg.encoder_layers, cfg.heads),
            "decoder_self": torch.ones(cfg.decoder_layers, cfg.heads),
            "cross": torch.ones(cfg.decoder_layers, cfg.heads)}
    with torch.no_grad():
        plain = model(b.src, b.src_mask, b.tgt_in, b.tgt_mask).logits
        same = model(b.src, b.src_mask, b.tgt_in, b.tgt_mask, head_masks=ones).logits
        for kind in ones:
            changed = {k: v.clone() for k, v in ones.items()}
            changed[kind][0, 0] = 0.0
            out = model(b.src, b.src_mask, b.tgt_in, b.tgt_mask, head_masks=changed).logits
            assert not torch.allclose(plain, out, atol=1e-6), kind
    assert torch.equal(plain, same)


def test_head_importance_and_pruning_on_a_trained_model(study, trained):
    loo = tr.attributions(study, trained, ("loo",))["loo"].scores
    table = ins.head_importance(study, trained, loo, k=3)
    cfg = trained.model.cfg
    assert len(table) == cfg.layers * cfg.heads
    assert table["cls_entropy"].between(0, 1 + 1e-9).all()
    share = table["explanation_share"]
    assert share.between(0, 1).all() and share.sum() == pytest.approx(1.0)     # one best head per example
    assert (table["prob_drop_ci_low"] <= table["prob_drop"]).all() and (table["prob_drop"] <= table["prob_drop_ci_high"]).all()

    curve = ins.pruning_curve(study, trained, steps=2, cap=50)
    perf = tr.performance(study).iloc[0]
    full = perf["test_accuracy"]
    assert perf["test_accuracy_ci_low"] <= full <= perf["test_accuracy_ci_high"]
    start = curve[curve["heads_pruned"] == 0]
    assert np.allclose(start["accuracy"], full)                       # nothing pruned: the model itself
    end = curve[curve["heads_pruned"] == cfg.layers * cfg.heads]
    assert end["accuracy"].nunique() == 1                             # all pruned: the order no longer matters
    assert set(curve["order"]) == {"least_important_first", "most_important_first", "random"}


# ----- readout ---------------------------------------------------------------------------------------

def test_a_probe_on_shuffled_labels_stays_at_chance_and_the_real_probe_does_not(study, trained):
    readout = ins.layer_readout(study, trained, probe_train=400)
    last = trained.model.cfg.layers
    shuffled = readout[readout["readout"] == "probe_shuffled_labels"]
    assert (shuffled["accuracy"] - 0.5).abs().max() < 0.12, shuffled[["layer", "accuracy"]]
    # the control is a mean over independent permutations, its band their spread (one draw is noise where
    # the states cluster by class)
    assert (shuffled["control_draws"] == 10).all()
    assert ((shuffled["ci_low"] <= shuffled["accuracy"]) & (shuffled["accuracy"] <= shuffled["ci_high"])).all()
    assert (shuffled["ci_high"] > shuffled["ci_low"]).any()
    with pytest.raises(ValueError, match="control_permutations"):
        ins.layer_readout(study, trained, probe_train=400, control_permutations=0)
    probe = readout[(readout["readout"] == "probe") & (readout["layer"] == last)]["accuracy"].iloc[0]
    assert probe > 0.8
    lens = readout[(readout["readout"] == "logit_lens") & (readout["layer"] == last)]
    assert lens["agreement_with_model"].iloc[0] == pytest.approx(1.0)    # the lens on the last layer is the model


# ----- activation maximisation ------------------------------------------------------------------------

def test_the_nearest_token_of_a_tokens_own_embedding_is_that_token():
    table = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    idx = torch.tensor([0, 7, 49, 7])
    assert torch.equal(neu.nearest_tokens(table[idx], table), idx)
    assert torch.equal(neu.nearest_tokens(3.0 * table[idx], table), idx)           # cosine: scale-free
    assert not (neu.nearest_tokens(table[idx], table, exclude=(7,)) == 7).any()


def test_optimised_input_reaches_at_least_the_activation_it_started_near(study, trained):
    neurons = neu.choose_neurons(study, trained, n=2)
    assert len(set(neurons)) == 2 and all(layer == trained.model.cfg.layers for layer, _ in neurons)
    out = neu.optimised_inputs(study, trained, neurons, length=3, steps=40)
    assert (out["activation_optimised"] > out["activation_dev_mean"]).all()
    assert all(len(t.split()) == 3 for t in out["tokens"])
    assert all(p.requires_grad for p in trained.model.parameters())             # parameters handed back


# ----- glass box and ensembles ------------------------------------------------------------------------

def test_tfidf_glass_box_scores_one_value_per_position_and_zero_at_specials(study, trained):
    target = tr.attributions(study, trained, ("loo",))["loo"].target
    result, info = neu.tfidf_explanations(study, trained, target)
    split = study.encoded("planted", "scratch")["analysis"]
    assert isinstance(result, Explanation) and len(result.scores) == len(split)
    for s, ids, words in zip(result.scores, split.ids, split.word_index):
        assert len(s) == len(ids)
        assert all(s[i] == 0 for i, w in enumerate(words) if w < 0)
    assert info["test_accuracy"] > 0.8                     # the planted keywords are linearly separable


def _fake_scores(values, target=None):
    return Explanation("fake", "test", [np.asarray(v, dtype=float) for v in values],
                       list(np.zeros(len(values), int) if target is None else target), seconds=1.0)


class _Split:
    def __init__(self, word_index):
        self.word_index = word_index


def test_explanation_ensembles_rescale_rank_and_refuse_missing_members():
    split = _Split([[-1, 0, 1, 2, -1], [-1, 0, -1]])
    a = _fake_scores([[9, 1, 3, 2, 9], [5, 4, 5]])
    b = _fake_scores([[0, 10, 30, 20, 0], [0, -2, 0]])        # b = 10 x a on the content positions
    out = ens.explanation_ensembles({"a": a, "b": b}, ("a", "b"), split)
    mean, rank = out["ensemble_mean"].scores, out["ensemble_rank"].scores
    assert np.allclose(mean[0], [0, 1 / 3, 1, 2 / 3, 0])     # per-example max-abs scaling makes a and b agree
    assert np.allclose(rank[0], [0, 0, 1, 0.5, 0])
    assert np.allclose(mean[1], [0, 0, 0])                   # a: +1, b: -1 cancel; specials stay 0
    assert out["ensemble_mean"].seconds == 2.0
    with pytest.raises(ValueError, match="available"):
        ens.explanation_ensembles({"a": a}, ("a", "c"), split)


def test_faithfulness_cache_tells_two_score_sets_of_one_name_apart(study, trained):
    split = study.encoded("planted", "scratch")["analysis"]
    n = len(split)
    rng = np.random.default_rng(0)
    target = tr.attributions(study, trained, ("loo",))["loo"].target
    first = {"ensemble_mean": _fake_scores([rng.normal(size=len(i)) for i in split.ids], target)}
    second = {"ensemble_mean": _fake_scores([-s for s in first["ensemble_mean"].scores], target)}
    a = trf.faithfulness_per_instance(study, trained, first)
    b = trf.faithfulness_per_instance(study, trained, second)
    assert a["example"].nunique() == n
    assert not np.allclose(a["comprehensiveness"].to_numpy(), b["comprehensiveness"].to_numpy())


def test_seed_stability_is_one_for_the_same_model_twice(study):
    same = ens.seed_stability(study, "planted", "scratch", (0, 0), ("gradient_x_input", "loo"))
    row = same.set_index("method")
    assert row.loc["gradient_x_input", "tau_between_seeds"] == pytest.approx(1.0)
    assert row.loc["gradient_x_input", "same_prediction"] == 1.0
    with pytest.raises(ValueError, match="at least 2 seeds"):
        ens.seed_stability(study, "planted", "scratch", (0,), ("loo",))


def test_internals_config_rejects_bad_values_with_the_key_named(tiny_config):
    with pytest.raises(ConfigError, match="internals.ensemble_members"):
        load_config(tiny_config("internals:\n  ensemble_members: [loo, saliency_maps]\n"))
    with pytest.raises(ConfigError, match="internals.stability_seeds"):
        load_config(tiny_config("internals:\n  stability_seeds: [1, 1]\n"))


def _per_instance(values: dict[str, list[float]], suff: dict[str, list[float]] | None = None):
    import pandas as pd

    rows = []
    for method, comp in values.items():
        for i, v in enumerate(comp):
            for fraction in (0.1, 0.5):
                rows.append({"dataset": "d", "model": "m", "mode": "remove", "method": method, "example": i,
                             "fraction": fraction, "comprehensiveness": v,
                             "sufficiency": (suff or values)[method][i]})
    return pd.DataFrame(rows)


def test_an_ensemble_is_called_better_than_its_best_member_only_when_paired_differences_say_so():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, 60)
    per = _per_instance({"a": list(base), "b": list(base - 0.1), "ensemble_mean": list(base + 0.01),
                         "ensemble_rank": list(base)})
    out = ens.ensemble_vs_best_member(per, ("a", "b")).set_index(["metric", "ensemble"])
    comp = out.loc[("aopc_comprehensiveness", "ensemble_mean")]
    assert comp["best_member"] == "a" and comp["verdict"] == "better"        # +0.01 on every example
    assert comp["gain"] == pytest.approx(0.01)
    assert out.loc[("aopc_comprehensiveness", "ensemble_rank"), "verdict"] == "no_difference"
    # sufficiency: lower is better, so the member with the lower values is best and +0.01 is worse
    suff = out.loc[("aopc_sufficiency", "ensemble_mean")]
    assert suff["best_member"] == "b" and suff["verdict"] == "worse"
    with pytest.raises(ValueError, match="score the members"):
        ens.ensemble_vs_best_member(per, ("a", "c"))


def test_dataset_examples_are_ranked_by_the_cls_activation_and_name_the_ngram_that_carries_it(study, trained):
    neurons = neu.choose_neurons(study, trained, n=1)
    table = neu.dataset_ngrams(study, trained, neurons, n=2, top=3, cap=100)
    assert list(table["rank"]) == [1, 2, 3]
    assert table["activation"].is_monotonic_decreasing
    assert all(1 <= len(g.split()) <= 2 for g in table["ngram"])
    assert table["activation_drop_when_occluded"].notna().all()


def test_seq2seq_head_importance_of_a_model_that_generates_nothing_is_an_empty_table(monkeypatch):
    from types import SimpleNamespace

    from aine_lib.report import plots

    monkeypatch.setattr(ins, "_generated_pairs", lambda study, m: ([], []))
    m = SimpleNamespace(task="copy", variant="softmax", seed=0,
                        model=SimpleNamespace(cfg=SimpleNamespace(encoder_layers=1, decoder_layers=1, heads=2)))
    table = ins.seq2seq_head_importance(SimpleNamespace(), m)
    assert table.empty and {"kind", "layer", "head", "logp_drop"} <= set(table.columns)
    plots.seq2seq_head_bars(table)            # one blank panel, not a crash
