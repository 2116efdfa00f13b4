"""The encoder-decoder Transformer, its training, synthetic alignments and AER: properties that can fail."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from aine_lib.config import ConfigError
from aine_lib.data.transduction import TASKS, make_task
from aine_lib.metrics.alignment import aer, alignment_from_scores, corpus_aer
from aine_lib.models.seq2seq_training import (Seq2SeqTrainConfig, TokenVocabulary, collate_pairs, exact_match,
                                              noam_rate, train_seq2seq)
from aine_lib.models.transformer import BOS, EOS, Seq2SeqConfig, Seq2SeqTransformer


def tiny(seed=0, **kw) -> Seq2SeqTransformer:
    torch.manual_seed(seed)
    return Seq2SeqTransformer(Seq2SeqConfig(**({"src_vocab": 20, "tgt_vocab": 20, "d_model": 32, "heads": 4,
                                                "encoder_layers": 2, "decoder_layers": 2, "d_ff": 64,
                                                "dropout": 0.0, "max_len": 32} | kw))).eval()


def batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    src = [torch.randint(3, 20, (n,), generator=gen).tolist() for n in (6, 3, 5)]
    tgt = [torch.randint(3, 20, (n,), generator=gen).tolist() for n in (4, 7, 2)]
    return collate_pairs(src, tgt)


def test_causal_mask_hides_the_future():
    model, b = tiny(), batch()
    out = model(b.src, b.src_mask, b.tgt_in, b.tgt_mask)
    changed = b.tgt_in.clone()
    changed[:, 3] = 5          # perturb target position 3
    out2 = model(b.src, b.src_mask, changed, b.tgt_mask)
    assert torch.allclose(out.logits[:, :3], out2.logits[:, :3], atol=1e-6)      # steps before it: unchanged
    assert not torch.allclose(out.logits[:, 3:], out2.logits[:, 3:], atol=1e-4)


def test_attention_tensors_have_the_right_shapes_and_sum_to_one():
    model, b = tiny(), batch()
    out = model(b.src, b.src_mask, b.tgt_in, b.tgt_mask)
    B, S = b.src.shape
    T = b.tgt_in.shape[1]
    expected = {"encoder_self": (B, 4, S, S), "decoder_self": (B, 4, T, T), "cross": (B, 4, T, S)}
    for name, shape in expected.items():
        assert len(out.attentions[name]) == 2
        for a in out.attentions[name]:
            assert a.shape == shape
            assert torch.allclose(a.sum(-1), torch.ones(shape[:-1]), atol=1e-5)
    for a in out.attentions["cross"]:       # padding source tokens get nothing
        assert bool((a.masked_select(~b.src_mask[:, None, None, :].expand_as(a)) == 0).all())
    for a in out.attentions["decoder_self"]:
        assert bool((a.triu(1) == 0).all())  # no attention to later target positions


def test_beam_one_equals_greedy():
    model, b = tiny(3), batch(1)
    assert model.beam_search(b.src, b.src_mask, beam=1, max_len=12) == model.greedy(b.src, b.src_mask, max_len=12)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_model_overfits_a_ten_example_copy_task(precision):
    examples = make_task("copy", 10, seed=0, min_len=3, max_len=6)
    vocab = TokenVocabulary.build([e.source for e in examples])
    pairs = [(vocab.encode(e.source), vocab.encode(e.target)) for e in examples]
    torch.manual_seed(0)
    model = Seq2SeqTransformer(Seq2SeqConfig(src_vocab=len(vocab), tgt_vocab=len(vocab), d_model=32, heads=2,
                                             encoder_layers=1, decoder_layers=1, d_ff=64, dropout=0.0, max_len=16))
    cfg = Seq2SeqTrainConfig(epochs=300, batch_size=10, warmup_steps=50, lr_scale=1.0, label_smoothing=0.0,
                             patience=None, precision=precision)
    train_seq2seq(model, pairs, pairs, cfg, seed=0, device="cpu")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    src = collate_pairs([s for s, _ in pairs], [t for _, t in pairs])
    assert exact_match(model.greedy(src.src, src.src_mask, max_len=8), [t for _, t in pairs]) == 1.0


def test_aer_of_the_perfect_diagonal_is_zero_and_of_a_wrong_one_is_one():
    for ex in make_task("copy", 5, seed=1):
        n = len(ex.source)
        diag = torch.eye(n).numpy()
        assert aer(alignment_from_scores(diag), ex.alignment) == 0.0
        hits = n % 2          # the anti-diagonal meets the diagonal once when n is odd
        assert aer(alignment_from_scores(diag[::-1]), ex.alignment) == pytest.approx(1 - hits / n)
    assert corpus_aer([{(0, 0), (1, 1)}], [{(0, 0), (1, 0)}]) == pytest.approx(0.5)
    assert aer({(0, 1)}, sure={(0, 0)}, possible={(0, 1)}) == pytest.approx(1 - 1 / 2)


@pytest.mark.parametrize("task", TASKS)
def test_synthetic_alignments_point_at_the_source_token_that_caused_the_output(task):
    for ex in make_task(task, 20, seed=2):
        assert len({t for t, _ in ex.alignment}) == len(ex.alignment)       # one link per aligned target token
        for t, s in ex.alignment:
            tgt, src = ex.target[t], ex.source[s]
            if task in ("copy", "reverse"):
                assert tgt == src
            elif task == "mapping":
                assert tgt == src.upper()
            else:
                assert tgt.lstrip("0") == src.lstrip("0") or src in ("january", "february", "march", "april",
                                                                      "may", "june", "july", "august", "september",
                                                                      "october", "november", "december")


def test_noam_schedule_warms_up_then_decays_and_bad_configs_fail():
    rates = [noam_rate(s, 64, 100) for s in (1, 50, 100, 400)]
    assert rates[0] < rates[1] < rates[2] and rates[3] < rates[2]
    with pytest.raises(ConfigError, match="divisible"):
        Seq2SeqConfig(src_vocab=10, tgt_vocab=10, d_model=30, heads=4)
    with pytest.raises(ValueError, match="max_len"):
        m = tiny()
        long = torch.ones(1, 40, dtype=torch.long)
        m(long, long.bool(), long, long.bool())
    b = collate_pairs([[5, 6]], [[7]])
    assert b.tgt_in.tolist() == [[BOS, 7]] and b.tgt_out.tolist() == [[7, EOS]]


# ----- explanations per generated token ---------------------------------------------------------

SEQ2SEQ_NAMES = ("cross_attention", "cross_attention_mean", "rollout", "norm", "gradient_x_input",
                 "integrated_gradients", "loo", "random")


def _target_logprob(model, batch, src_emb, tgt_emb) -> torch.Tensor:
    """``[B, T]`` log p(y_t | x, y_<t) of the batch's targets straight from the model (0 at padding)."""
    logits = model(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_mask, src_embeddings=src_emb,
                   tgt_embeddings=tgt_emb).logits
    logp = torch.log_softmax(logits, -1).gather(-1, batch.tgt_out.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return logp * batch.tgt_mask


def test_every_seq2seq_method_gives_a_step_by_source_matrix():
    from aine_lib.attribution import get_method

    model, b = tiny(4), batch(2)
    for method in SEQ2SEQ_NAMES:
        kwargs = {"n_steps": 4} if method == "integrated_gradients" else {}
        s = get_method(method, model, **kwargs).attribute(b, None)
        assert s.shape == (3, b.tgt_in.shape[1], b.src.shape[1]), method
        assert bool((s[~(b.tgt_mask[:, :, None] & b.src_mask[:, None, :])] == 0).all()), method
        assert torch.isfinite(s).all(), method
    with pytest.raises(ValueError, match="unknown attribution method"):
        get_method("saliency", model)


def test_encoder_decoder_rollout_rows_are_distributions_over_source_and_prefix():
    from aine_lib.attribution import get_method

    model, b = tiny(5), batch(3)
    method = get_method("rollout", model)
    src = method.attribute(b, None)
    tgt = method.last_target_scores
    total = src.sum(-1) + (tgt * b.tgt_mask[:, None, :]).sum(-1)
    assert torch.allclose(total[b.tgt_mask], torch.ones(int(b.tgt_mask.sum())), atol=1e-5)
    assert bool((tgt.triu(1).abs() < 1e-7).all())          # no mass from future target tokens


def test_gradients_never_reach_future_target_tokens_and_ig_is_complete():
    from aine_lib.attribution import get_method

    model, b = tiny(6), batch(4)
    gxi = get_method("gradient_x_input", model)
    gxi.attribute(b, None)
    tgt = gxi.last_target_scores
    assert tgt.shape == (3, b.tgt_in.shape[1], b.tgt_in.shape[1])
    assert bool((tgt.triu(1) == 0).all())
    assert bool((tgt.tril() != 0).any())                    # the prefix part is there (all zeros would pass above)
    ig = get_method("integrated_gradients", model, n_steps=64)
    src_ig = ig.attribute(b, None)
    tgt_ig = ig.last_target_scores
    with torch.no_grad():
        full = _target_logprob(model, b, None, None)
        zero = _target_logprob(model, b, torch.zeros_like(model.embed_source(b.src)),
                               torch.zeros_like(model.embed_target(b.tgt_in)))
    total = src_ig.sum(-1) + tgt_ig.sum(-1)
    assert torch.allclose(total[b.tgt_mask], (full - zero)[b.tgt_mask], atol=2e-2)


def test_loo_matches_removing_the_token_by_hand():
    from aine_lib.attribution import get_method

    model = tiny(7)
    src, tgt = [5, 9, 12, 7, 4], [8, 3, 11]
    b = collate_pairs([src, [6, 6]], [tgt, [9]])
    scores = get_method("loo", model).attribute(b, None)
    with torch.no_grad():
        full = _target_logprob(model, collate_pairs([src], [tgt]), None, None)[0]
        less = _target_logprob(model, collate_pairs([src[:2] + src[3:]], [tgt]), None, None)[0]
    assert torch.allclose(scores[0, :4, 2], full - less, atol=1e-5)


def test_entmax_cross_attention_is_a_sparse_distribution():
    model, b = tiny(8, cross_normaliser="entmax15"), batch(6)
    with torch.no_grad():
        model.decoder[0].cross_attention.query.weight.mul_(20)   # sharper scores, so some weights hit 0
        out = model(b.src, b.src_mask, b.tgt_in, b.tgt_mask)
    for a in out.attentions["cross"]:
        assert torch.allclose(a.sum(-1), torch.ones(a.shape[:-1]), atol=1e-5)
        assert bool((a.masked_select(~b.src_mask[:, None, None, :].expand_as(a)) == 0).all())
    real = out.attentions["cross"][0].masked_select(b.src_mask[:, None, None, :].expand_as(out.attentions["cross"][0]))
    assert bool((real == 0).any())                                      # exact zeros on real tokens: sparse
    with pytest.raises(ConfigError, match="cross_normaliser"):
        Seq2SeqConfig(src_vocab=10, tgt_vocab=10, cross_normaliser="sparsemax2")


def test_alignment_loss_is_minimal_at_the_gold_alignment():
    from aine_lib.models.seq2seq_training import alignment_loss

    links = [[(0, 1), (1, 0)]]
    mask = torch.tensor([[True, True, True]])
    gold = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]]])
    wrong = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]])
    assert float(alignment_loss(gold, links, mask)) == pytest.approx(0.0, abs=1e-6)
    assert float(alignment_loss(wrong, links, mask)) > 10
    assert float(alignment_loss(gold, [[]], mask)) == 0.0           # no links: nothing supervised
    with pytest.raises(ValueError, match="train_alignments"):
        train_seq2seq(tiny(), [([5], [6])], [([5], [6])], Seq2SeqTrainConfig(epochs=1, align_weight=1.0), 0, "cpu")


def test_killed_training_resumes_from_its_checkpoint_with_the_same_weights(tmp_path):
    """Four epochs straight == two epochs, a 'kill', then a resumed run (dropout on, so RNG state matters)."""
    examples = make_task("reverse", 40, seed=1, min_len=3, max_len=6)
    vocab = TokenVocabulary.build([e.source for e in examples])
    pairs = [(vocab.encode(e.source), vocab.encode(e.target)) for e in examples]
    model_cfg = Seq2SeqConfig(src_vocab=len(vocab), tgt_vocab=len(vocab), d_model=16, heads=2, encoder_layers=1,
                              decoder_layers=1, d_ff=32, dropout=0.2, max_len=16)

    def cfg(epochs):
        return Seq2SeqTrainConfig(epochs=epochs, batch_size=8, warmup_steps=10, lr_scale=1.0,
                                  label_smoothing=0.1, patience=None)

    torch.manual_seed(0)
    straight = train_seq2seq(Seq2SeqTransformer(model_cfg), pairs, pairs[:10], cfg(4), seed=3, device="cpu")

    ckpt = tmp_path / "run.pt.partial"
    torch.manual_seed(0)
    train_seq2seq(Seq2SeqTransformer(model_cfg), pairs, pairs[:10], cfg(2), seed=3, device="cpu", checkpoint=ckpt)
    assert ckpt.exists()
    torch.manual_seed(99)   # another initialisation and RNG state: only the checkpoint can make the runs agree
    resumed = train_seq2seq(Seq2SeqTransformer(model_cfg), pairs, pairs[:10], cfg(4), seed=3, device="cpu",
                            checkpoint=ckpt)
    assert resumed.best_epoch == straight.best_epoch
    assert resumed.history["epoch"].tolist() == [1, 2, 3, 4]
    assert resumed.history["dev_loss"].tolist() == pytest.approx(straight.history["dev_loss"].tolist(), abs=1e-6)
    for name, tensor in straight.state_dict.items():
        torch.testing.assert_close(resumed.state_dict[name], tensor, rtol=0, atol=1e-6)

    ckpt.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="ignoring training checkpoint"):
        fresh = train_seq2seq(Seq2SeqTransformer(model_cfg), pairs, pairs[:10], cfg(1), seed=3, device="cpu",
                              checkpoint=ckpt)
    assert fresh.history["epoch"].tolist() == [1]


def test_generation_interventions_are_cached_per_model(tmp_path, monkeypatch):
    """Notebook 13 asks for the softmax models' interventions twice (its faithfulness table and its variants
    table); the second request, and a rerun, must read the cached rows instead of recomputing the IG."""
    from tests.conftest import REPO
    from aine_lib.config import load_config
    from aine_lib.experiments import seq2seq as s2
    from aine_lib.experiments import seq2seq_generation as s2g

    cfg = load_config(REPO / "configs" / "smoke.yaml",
                      {"cache_dir": str(tmp_path / "cache"), "progress": False, "seq2seq.tasks": ["copy"],
                       "seq2seq.seeds": [0, 1], "seq2seq.n_train": 64, "seq2seq.n_dev": 16, "seq2seq.n_test": 16, "seq2seq.epochs": 1,
                       "seq2seq.d_model": 16, "seq2seq.d_ff": 32, "seq2seq.max_analysis_examples": 3,
                       "seq2seq.ig_steps": 2})
    study = s2.Seq2SeqStudy(cfg)
    first = s2g.generation_interventions(study, n_permutations=2, seed=0)
    assert len(first) > 0 and set(first["task"]) == {"copy"} and set(first["seed"]) == {0, 1}
    for m in study.models():          # each model's entry holds that model's rows (a key without the seed fails)
        own = first[first["seed"] == m.seed].reset_index(drop=True)
        pd.testing.assert_frame_equal(own, s2g._compute_model_interventions(study, m, 2, 0))

    def recompute(*args, **kwargs):
        raise AssertionError("interventions recomputed although they are cached")

    monkeypatch.setattr(s2g, "_compute_model_interventions", recompute)
    again = s2g.generation_interventions(s2.Seq2SeqStudy(cfg), n_permutations=2, seed=0)
    pd.testing.assert_frame_equal(first, again)
    with pytest.raises(AssertionError, match="recomputed"):      # another n_permutations is another entry
        s2g.generation_interventions(study, n_permutations=3, seed=0)


def test_peakedness_table_bins_steps_by_their_largest_attention_weight():
    from aine_lib.experiments.seq2seq_generation import peakedness_table

    # sentence 0: two flat steps where attention misses the LOO token; sentence 1: two peaked steps where it hits
    per_step = pd.DataFrame({
        "task": "t", "variant": "softmax", "example": [0, 0, 1, 1], "step": [0, 1, 0, 1],
        "attention_max": [0.0, 0.3, 0.9, 1.0], "top_attention_is_top_loo": [False, False, True, True],
        "permutation_change_rate": [0.1, 0.3, 0.8, 1.0], "erase_top_attention": [0.0, 0.2, 3.0, 5.0],
        "erase_top_loo": [1.0, 1.0, 3.0, 5.0]})
    table = peakedness_table(per_step, bins=(0.0, 0.5, 1.0))
    assert table["attention_max_low"].tolist() == [0.0, 0.5] and table["attention_max_high"].tolist() == [0.5, 1.0]
    assert table["n_tokens"].tolist() == [2, 2] and table["share_of_steps"].tolist() == [0.5, 0.5]
    assert table["top_attention_is_top_loo"].tolist() == [0.0, 1.0]            # the all-zero step is kept
    assert table["erase_top_attention"].tolist() == pytest.approx([0.1, 4.0])
    assert (table["erase_top_loo_ci_low"] <= table["erase_top_loo"]).all()
    with pytest.raises(ValueError, match="increasing edges"):
        peakedness_table(per_step, bins=(0.5, 0.2, 1.0))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        peakedness_table(per_step.assign(attention_max=[0.1, float("nan"), 0.9, 1.0]))
    import matplotlib

    matplotlib.use("Agg")
    from aine_lib.report import plots

    fig = plots.peakedness_points(table, min_tokens=2)               # both bins have 2 tokens: one line, 2 points
    assert [len(c.lines[0].get_xdata()) for c in fig.axes[0].containers] == [2]
    fig = plots.peakedness_points(table, min_tokens=3)               # too few tokens: nothing drawn
    assert fig.axes[0].containers == []
    # a mean one ulp outside its bootstrap CI (different summation order) is drawn, not refused by matplotlib
    off = table.assign(top_attention_is_top_loo_ci_high=table["top_attention_is_top_loo"] - 1e-16,
                       permutation_change_rate_ci_low=table["permutation_change_rate"] + 1e-16)
    plots.peakedness_points(off, min_tokens=2)


def test_seq2seq_analysis_keys_follow_the_training_data_the_rows_and_the_analysis_code(tmp_path, monkeypatch):
    """An analysis cached for one model must not answer for weights trained on other data (the key used to
    name only task, seed and variant), nor survive a change of the analysis code."""
    from dataclasses import replace

    from tests.conftest import REPO
    from aine_lib.config import load_config
    from aine_lib.experiments import seq2seq as s2
    from aine_lib.cache import params_key

    def study(**kw):
        cfg = load_config(REPO / "configs" / "smoke.yaml",
                          {"cache_dir": str(tmp_path / "cache"), "progress": False, "seq2seq.tasks": ["copy"],
                           "seq2seq.seeds": [0], "seq2seq.n_train": 48, "seq2seq.n_dev": 8, "seq2seq.n_test": 8,
                           "seq2seq.epochs": 1, "seq2seq.d_model": 16, "seq2seq.d_ff": 32,
                           "seq2seq.max_analysis_examples": 3} | kw)
        return s2.Seq2SeqStudy(cfg)

    a = study()
    m = a.train("copy", 0)
    key = a.model_key(m)
    assert m.training_key is not None and key == study().model_key(study().train("copy", 0))
    # more training data: other weights, so another key, although task, seed, variant and rows are the same
    b = study(**{"seq2seq.n_train": 56})
    mb = b.train("copy", 0)
    assert b.analysis("copy") == a.analysis("copy")
    assert mb.training_key != m.training_key and params_key(b.model_key(mb)) != params_key(key)
    # other analysis rows
    assert study(**{"seq2seq.max_analysis_examples": 2}).model_key(m)["rows"] != key["rows"]
    # the analysis code changed
    monkeypatch.setattr(s2, "ANALYSIS_CODE_VERSION", s2.ANALYSIS_CODE_VERSION + 1)
    assert params_key(a.model_key(m)) != params_key(key)
    with pytest.raises(ValueError, match="training_key"):
        a.model_key(replace(m, training_key=None))


def test_the_bible_trains_only_its_configured_variants(tmp_path, monkeypatch):
    """seq2seq.bible.variants: [softmax] keeps the Bible's entmax and supervised models out of every loop
    (they cost 2/3 of the Bible's training), while the synthetic tasks still train all three."""
    from tests.conftest import REPO
    from aine_lib.config import load_config
    from aine_lib.experiments import seq2seq as s2

    cfg = load_config(REPO / "configs" / "smoke.yaml",
                      {"cache_dir": str(tmp_path / "cache"), "seq2seq.tasks": ["copy", "bible"],
                       "seq2seq.seeds": [0, 1], "seq2seq.bible.seeds": [0, 1], "seq2seq.bible.variants": ["softmax"]})
    study = s2.Seq2SeqStudy(cfg)
    monkeypatch.setattr(study, "train", lambda task, seed, variant="softmax": (task, variant, seed))
    trained = list(study.models(s2.VARIANTS))
    assert [t for t in trained if t[0] == "bible"] == [("bible", "softmax", 0), ("bible", "softmax", 1)]
    assert {(t[1], t[2]) for t in trained if t[0] == "copy"} == {(v, s) for v in s2.VARIANTS for s in (0, 1)}
