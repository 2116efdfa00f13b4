"""Does cross-attention explain generation decisions? (notebook 13)

* :func:`decay_curves` -- cross-attention mass by distance from the gold-aligned source token, and its
  entropy, per layer;
* :func:`generation_interventions` -- per generated token: permuting cross-attention, and erasing the
  source token that attention (or IG, LOO, chance) ranks first; :func:`faithfulness_table` summarises;
* :func:`peakedness_table` -- is peaked attention more faithful than diffuse attention?
* :func:`variants_table` -- softmax, sparse (entmax) and alignment-supervised cross-attention compared.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from aine_lib.attribution import get_method
from aine_lib.experiments.seq2seq import Seq2SeqStudy, TrainedSeq2Seq, VARIANTS, _batches, performance
from aine_lib.experiments.seq2seq_alignment import alignment_table
from aine_lib.interventions.attention import permute_attention
from aine_lib.metrics.bootstrap import cluster_bootstrap_ci
from aine_lib.metrics.divergence import total_variation
from aine_lib.models.seq2seq_training import collate_pairs
from aine_lib.repro import make_generator


# ----- 13: generation decisions ---------------------------------------------------------------------

def _generated_pairs(study: Seq2SeqStudy, m: TrainedSeq2Seq) -> tuple[list[tuple[list[int], list[int]]], list[int]]:
    """(source ids, the model's own greedy output) for the analysis examples, empty outputs dropped,
    and each kept pair's index in ``study.analysis`` (the same sentence across seeds and variants)."""
    data = study.data(m.task)
    sources = [data.vocab.encode(e.source) for e in study.analysis(m.task)]
    out, index = [], []
    for start in range(0, len(sources), 64):
        chunk = sources[start:start + 64]
        b = collate_pairs(chunk, [[3]] * len(chunk)).to(study.device)
        hyps = m.model.greedy(b.src, b.src_mask, max_len=study.settings(m.task).decode_len)
        for j, (src, hyp) in enumerate(zip(chunk, hyps)):
            if hyp:
                out.append((src, hyp))
                index.append(start + j)
    return out, index


def decay_curves(study: Seq2SeqStudy, max_distance: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cross-attention mass by signed distance from the gold-aligned source token, per layer;
    entropy of cross-attention by layer and target position), teacher-forced on the references."""
    mass_rows, entropy_rows = [], []
    for m in study.models():
        data = study.data(m.task)
        examples = study.analysis(m.task)
        pairs = [(data.vocab.encode(e.source), data.vocab.encode(e.target)) for e in examples]
        for start, b in _batches(pairs, 64):
            b = b.to(study.device)
            with torch.no_grad():
                cross = m.model(b.src, b.src_mask, b.tgt_in, b.tgt_mask).attentions["cross"]
            for layer, a in enumerate(cross):
                a = a.mean(1).cpu().numpy()                                     # [B, T, S]
                for i in range(a.shape[0]):
                    ex = examples[start + i]
                    S, T = len(ex.source), len(ex.target) + 1
                    row = a[i, :T, :S]
                    ent = -(row * np.log(np.clip(row, 1e-12, None))).sum(-1)
                    for t in range(T):
                        entropy_rows.append({"task": m.task, "seed": m.seed, "layer": layer + 1, "position": t,
                                             "entropy": float(ent[t]), "max_entropy": float(np.log(S))})
                    for t, s_star in ex.alignment:
                        for d in range(-max_distance, max_distance + 1):
                            s = s_star + d
                            if 0 <= s < S:
                                mass_rows.append({"task": m.task, "seed": m.seed, "layer": layer + 1,
                                                  "distance": d, "mass": float(row[t, s])})
    mass = pd.DataFrame(mass_rows).groupby(["task", "seed", "layer", "distance"], as_index=False)["mass"].mean()
    entropy = pd.DataFrame(entropy_rows).groupby(["task", "seed", "layer", "position"], as_index=False)[
        ["entropy", "max_entropy"]].mean()
    return mass, entropy


def _permute_rows(probs: torch.Tensor, key_mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shuffle each attention row's weights among the real source positions (every head and step)."""
    B, h, T, S = probs.shape
    flat = probs.reshape(B * h * T, S)
    mask = key_mask[:, None, None, :].expand(B, h, T, S).reshape(B * h * T, S)
    flat = flat / flat.sum(-1, keepdim=True)
    return permute_attention(flat, mask, 1, generator)[0].reshape(B, h, T, S)


def generation_interventions(study: Seq2SeqStudy, n_permutations: int = 10, seed: int = 0,
                             variants: tuple[str, ...] = ("softmax",)) -> pd.DataFrame:
    """Per generated token (teacher-forced on the model's own greedy output):

    * ``permutation``: share of permutations of *all* cross-attention rows that
      change the token, and the median TVD of the output distribution;
    * ``erase_top_attention`` / ``erase_top_head0`` / ``erase_top_ig`` / ``erase_top_loo`` /
      ``erase_random``: drop in log p(token) when the source token with the
      largest last-layer cross-attention (head mean / head 0, the head the
      ``supervised`` variant trains on alignments) / IG score / LOO effect / a
      random one is removed.

    ``example`` is the sentence's index in ``study.analysis`` (shared by seeds
    and variants, so CIs can resample sentences).
    """
    return pd.concat([_model_interventions(study, m, n_permutations, seed) for m in study.models(variants)],
                     ignore_index=True)


def _model_interventions(study: Seq2SeqStudy, m: TrainedSeq2Seq, n_permutations: int, seed: int) -> pd.DataFrame:
    """One model's rows of :func:`generation_interventions`, cached per model (IG over every generated step of
    the Bible test verses takes minutes per model on a CPU, and notebook 13 asks for the softmax models twice)."""
    key = study.model_key(m) | {"n_permutations": n_permutations, "seed": seed}
    return study.cache.get_or_compute("seq2seq_interventions", key,
                                      lambda: _compute_model_interventions(study, m, n_permutations, seed))


def _compute_model_interventions(study: Seq2SeqStudy, m: TrainedSeq2Seq, n_permutations: int,
                                 seed: int) -> pd.DataFrame:
    rows = []
    pairs, index = _generated_pairs(study, m)
    gen = make_generator(seed)
    rng = np.random.default_rng(seed)
    for start, b in _batches(pairs, 32):
        b = b.to(study.device)
        with torch.no_grad():
            out = m.model(b.src, b.src_mask, b.tgt_in, b.tgt_mask)
            probs = torch.softmax(out.logits, -1)
            tokens = probs.argmax(-1)
            changed = torch.zeros_like(tokens, dtype=torch.float)
            tvds = []
            for _ in range(n_permutations):
                perm = m.model(b.src, b.src_mask, b.tgt_in, b.tgt_mask,
                               cross_transform=lambda layer, p: _permute_rows(p, b.src_mask, gen))
                p2 = torch.softmax(perm.logits, -1)
                changed += (p2.argmax(-1) != tokens).float() / n_permutations
                tvds.append(total_variation(p2, probs))
            tvd = torch.stack(tvds).median(0).values
            attention = out.attentions["cross"][-1].mean(1)                  # [B, T, S]
            head0 = out.attentions["cross"][-1][:, 0]
        loo = get_method("loo", m.model).attribute(b, None)                     # [B, T, S] log p drop
        ig = get_method("integrated_gradients", m.model, n_steps=study.cfg.seq2seq.ig_steps).attribute(b, None)
        for i in range(len(b)):
            S = int(b.src_mask[i].sum())
            T = int(b.tgt_mask[i].sum())
            for t in range(T - 1):                                             # generated tokens, EOS step left out
                top_att = int(attention[i, t, :S].argmax())
                top_h0 = int(head0[i, t, :S].argmax())
                top_ig = int(ig[i, t, :S].argmax())
                top_loo = int(loo[i, t, :S].argmax())
                r = int(rng.integers(0, S))
                rows.append({"task": m.task, "variant": m.variant, "seed": m.seed,
                             "example": index[start + i], "step": t,
                             "permutation_change_rate": float(changed[i, t]),
                             "permutation_tvd": float(tvd[i, t]),
                             "erase_top_attention": float(loo[i, t, top_att]),
                             "erase_top_head0": float(loo[i, t, top_h0]),
                             "erase_top_ig": float(loo[i, t, top_ig]),
                             "erase_top_loo": float(loo[i, t, top_loo]),
                             "erase_random": float(loo[i, t, r]),
                             "attention_max": float(attention[i, t, :S].max()),
                             "top_attention_is_top_loo": top_att == top_loo,
                             "top_head0_is_top_loo": top_h0 == top_loo})
    return pd.DataFrame(rows)


def faithfulness_table(per_step: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``tables/seq2seq_faithfulness.csv``: task, intervention, value (mean over generated tokens), CI, n."""
    metrics = ["permutation_change_rate", "permutation_tvd", "erase_top_attention", "erase_top_head0",
               "erase_top_ig", "erase_top_loo", "erase_random", "top_attention_is_top_loo", "top_head0_is_top_loo"]
    rows = []
    if "variant" not in per_step:
        per_step = per_step.assign(variant="softmax")
    for (task, variant), g in per_step.groupby(["task", "variant"], sort=False):
        clusters = g["example"].to_numpy()        # a sentence with all its seeds is one cluster
        for metric in metrics:
            v = g[metric].astype(float).to_numpy()
            lo, hi = cluster_bootstrap_ci(v, clusters, seed=seed)
            rows.append({"task": task, "variant": variant, "metric": metric, "value": float(v.mean()), "ci_low": lo,
                         "ci_high": hi,
                         "n_tokens": len(v), "n_sentences": len(set(clusters))})
    return pd.DataFrame(rows)


PEAKEDNESS_BINS = (0.0, 0.4, 0.6, 0.8, 1.0)


def peakedness_table(per_step: pd.DataFrame, bins: tuple[float, ...] = PEAKEDNESS_BINS,
                     seed: int = 0) -> pd.DataFrame:
    """``tables/seq2seq_peakedness.csv``: is attention a better explanation of the steps where it is peaked?

    Generated tokens are binned by the largest last-layer mean cross-attention weight of their step
    (``attention_max``, which a reader of the attention map sees). Per task, variant and bin: how often the
    most-attended source token is the one whose removal hurts most, the permutation change rate, the drop in
    log p when the most-attended token is erased and the largest single-token drop (LOO), each with a CI that
    resamples sentences, and the bin's share of the steps.

    Bins are closed on the right (``[0, 0.4], (0.4, 0.6], ...``): a weight on an edge goes to the lower bin.
    A bin without steps gets no row. ``attention_max`` outside [0, 1], or missing, is an error: it would
    otherwise drop out of every bin and leave the shares summing to less than 1."""
    if len(bins) < 2 or list(bins) != sorted(set(bins)) or bins[0] < 0.0 or bins[-1] > 1.0:
        raise ValueError(f"bins {bins} must be increasing edges within [0, 1], e.g. {PEAKEDNESS_BINS}")
    weights = per_step["attention_max"].to_numpy(dtype=float)
    if np.isnan(weights).any() or (weights < 0).any() or (weights > 1).any():
        raise ValueError("attention_max must be a weight in [0, 1] for every step; recompute the interventions "
                         "with seq2seq.generation_interventions")
    if "variant" not in per_step:
        per_step = per_step.assign(variant="softmax")
    metrics = ("top_attention_is_top_loo", "permutation_change_rate", "erase_top_attention", "erase_top_loo")
    rows = []
    for (task, variant), g in per_step.groupby(["task", "variant"], sort=False):
        # the lowest edge is included, so a weight equal to bins[0] is not dropped
        binned = pd.cut(g["attention_max"], list(bins), include_lowest=True, labels=False)
        for i, b in g.groupby(binned, sort=True):
            row = {"task": task, "variant": variant, "attention_max_low": bins[int(i)],
                   "attention_max_high": bins[int(i) + 1], "n_tokens": len(b),
                   "share_of_steps": len(b) / len(g), "n_sentences": int(b["example"].nunique())}
            for metric in metrics:
                v = b[metric].astype(float).to_numpy()
                lo, hi = cluster_bootstrap_ci(v, b["example"].to_numpy(), seed=seed)
                row |= {metric: float(v.mean()), f"{metric}_ci_low": lo, f"{metric}_ci_high": hi}
            rows.append(row)
    return pd.DataFrame(rows)


def variants_table(study: Seq2SeqStudy, seed: int = 0, n_permutations: int = 10) -> pd.DataFrame:
    """``tables/seq2seq_variants.csv``: does sparse or alignment-supervised cross-attention become a more
    faithful explanation, and at what cost? Per task and variant: exact match and BLEU, AER of the last
    layer's mean cross-attention and of its head 0 (the supervised head), the permutation change rate and
    the drop in log p(token) when erasing the most-attended source token vs the LOO-best one."""
    perf, _ = performance(study, variants=VARIANTS)
    aer = alignment_table(study, seed=seed, variants=VARIANTS)
    per_step = generation_interventions(study, n_permutations=n_permutations, seed=seed, variants=VARIANTS)
    faith = faithfulness_table(per_step, seed=seed)
    rows = []
    for (task, variant), g in perf.groupby(["task", "variant"], sort=False):
        a = aer[(aer["task"] == task) & (aer["variant"] == variant)].groupby("method")["aer"].mean()
        last = study.settings(task).decoder_layers
        f = faith[(faith["task"] == task) & (faith["variant"] == variant)].set_index("metric") \
            if len(faith) else pd.DataFrame()

        def get(metric: str, column: str = "value") -> float:
            # a model that generated nothing on the analysis rows has no per-token measurements
            return float(f.loc[metric, column]) if metric in f.index else np.nan

        rows.append({"task": task, "variant": variant, "exact_match": g["exact_match"].mean(),
                     "bleu": g["bleu"].mean(), "n_seeds": len(g),
                     "aer_cross_last_mean": a.get(f"cross L{last} mean", np.nan),
                     "aer_cross_last_head0": a.get(f"cross L{last} H0", np.nan),
                     "aer_integrated_gradients": a.get("integrated_gradients", np.nan),
                     "permutation_change_rate": get("permutation_change_rate"),
                     "permutation_change_ci_low": get("permutation_change_rate", "ci_low"),
                     "permutation_change_ci_high": get("permutation_change_rate", "ci_high"),
                     "erase_top_attention": get("erase_top_attention"),
                     "erase_top_attention_ci_low": get("erase_top_attention", "ci_low"),
                     "erase_top_attention_ci_high": get("erase_top_attention", "ci_high"),
                     "erase_top_head0": get("erase_top_head0"),
                     "erase_top_loo": get("erase_top_loo"),
                     "top_attention_is_top_loo": get("top_attention_is_top_loo"),
                     "top_head0_is_top_loo": get("top_head0_is_top_loo")})
    return pd.DataFrame(rows)
