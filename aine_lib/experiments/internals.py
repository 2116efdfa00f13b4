"""Inside the model: does attention explain the internal computation? (notebook 16)

Attention maps are one intermediate quantity of a Transformer; these
experiments look at the others and test attention's story against them.
Every function takes a :class:`~aine_lib.experiments.transformers.TransformerStudy`
(or the seq2seq study) and a trained model, returns a tidy DataFrame, and
caches what is expensive.

* :func:`head_importance` -- ablate one self-attention head at a time (its
  output zeroed through ``head_mask``): the drop in accuracy and in the
  probability of the model's own prediction, next to the head's [CLS]
  attention entropy and how often its [CLS] attention is the head that agrees
  best with leave-one-out ("the explanation head").
* :func:`pruning_curve` -- remove heads cumulatively, least important first
  (by the ablation above, measured on the *dev* split), most important first
  or in random order, and track accuracy on the analysis (test) rows.
* :func:`seq2seq_head_importance` -- the same ablation for every encoder,
  decoder and cross-attention head of the encoder-decoder, measured as the
  drop in log p of the tokens the model generated.
* :func:`layer_readout` -- where the decision forms: a logistic-regression
  probe on each layer's [CLS] state (trained on training rows, scored on
  test rows, with a random-label control) and the logit lens (the model's own
  pooler and classifier applied to each layer's [CLS] state).

Activation maximisation and the TF-IDF glass box are in :mod:`aine_lib.experiments.internals_neurons`;
explanation ensembles and seed stability in :mod:`aine_lib.experiments.ensembles`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from aine_lib.experiments.seq2seq import _batches as s2s_batches
from aine_lib.experiments.seq2seq_generation import _generated_pairs
from aine_lib.experiments.transformers import TrainedTransformer, TransformerStudy, _batches, content_positions
from aine_lib.metrics.bootstrap import bootstrap_ci
from aine_lib.metrics.rank import kendall_tau_top_k
from aine_lib.models.transformer_training import EncodedSplit, predict_probabilities


def _split(study: TransformerStudy, m: TrainedTransformer, split: str, cap: int | None = None,
           seed: int = 0) -> EncodedSplit:
    enc = study.encoded(m.dataset, m.kind)[split]
    if cap is None or len(enc) <= cap:
        return enc
    rows = sorted(np.random.default_rng(seed).choice(len(enc), size=cap, replace=False).tolist())
    return EncodedSplit([enc.ids[i] for i in rows], [enc.labels[i] for i in rows], [enc.word_index[i] for i in rows])


def _head_grid(model) -> list[tuple[int, int]]:
    return [(layer, head) for layer in range(model.cfg.layers) for head in range(model.cfg.heads)]


# ----- heads ---------------------------------------------------------------------------------------

def ablation_effects(study: TransformerStudy, m: TrainedTransformer, split: str = "analysis",
                     cap: int | None = None) -> pd.DataFrame:
    """Per head and row: the probability of the full model's predicted class with that head ablated,
    and whether the ablated model is correct. Cached."""
    enc = _split(study, m, split, cap, seed=study.cfg.seed)

    def compute() -> pd.DataFrame:
        full = predict_probabilities(m.model, enc, study.device)
        pred = full.argmax(1)
        labels = np.asarray(enc.labels)
        rows = [pd.DataFrame({"layer": -1, "head": -1, "example": np.arange(len(enc)),
                              "p_pred": full[np.arange(len(enc)), pred], "correct": pred == labels})]
        for layer, head in tqdm(_head_grid(m.model), desc=f"head ablation {m.dataset}/{m.kind}",
                                disable=not study.progress, leave=False):
            mask = torch.ones(m.model.cfg.layers, m.model.cfg.heads)
            mask[layer, head] = 0.0
            p = predict_probabilities(m.model, enc, study.device, head_mask=mask)
            rows.append(pd.DataFrame({"layer": layer, "head": head, "example": np.arange(len(enc)),
                                      "p_pred": p[np.arange(len(enc)), pred], "correct": p.argmax(1) == labels}))
        return pd.concat(rows, ignore_index=True)

    key = study.model_key(m) | {"split": split, "cap": cap}
    return study.cache.get_or_compute("internals_ablation", key, compute)


@torch.no_grad()
def cls_attention(study: TransformerStudy, m: TrainedTransformer) -> list[np.ndarray]:
    """Per analysis example, ``[layers, heads, T]``: each head's attention from [CLS] (position 0)."""
    enc = study.encoded(m.dataset, m.kind)["analysis"]
    m.model.eval()
    out = []
    for _, b in _batches(enc, 32):
        b = b.to(study.device)
        att = torch.stack(m.model(b.ids, b.mask).attentions, 1)[:, :, :, 0, :]      # [B, L, H, T]
        for i, n in enumerate(b.mask.sum(1).tolist()):
            out.append(att[i, :, :, :n].float().cpu().numpy())
    return out


def head_importance(study: TransformerStudy, m: TrainedTransformer, loo_scores: list[np.ndarray], k: int = 5,
                    seed: int = 0) -> pd.DataFrame:
    """Per head: accuracy and probability drop when it is ablated (CIs over examples), the normalised entropy
    of its [CLS] attention, and ``explanation_share``: the share of examples on which its [CLS] attention has
    the highest top-``k`` Kendall tau with leave-one-out among all heads (ties share the example equally)."""
    effects = ablation_effects(study, m)
    full = effects[effects["layer"] == -1].set_index("example")
    att = cls_attention(study, m)
    positions = content_positions(study.encoded(m.dataset, m.kind)["analysis"])
    grid = _head_grid(m.model)
    taus = np.full((len(att), len(grid)), np.nan)
    entropy = np.full((len(att), len(grid)), np.nan)
    for i, (a, pos) in enumerate(zip(att, positions)):
        if len(pos) < 2:
            continue
        for j, (layer, head) in enumerate(grid):
            row = a[layer, head]
            entropy[i, j] = float(-(row * np.log(np.clip(row, 1e-12, None))).sum() / np.log(len(row)))
            taus[i, j] = kendall_tau_top_k(row[pos], np.abs(loo_scores[i][pos]), k)
    valid = np.isfinite(taus).any(1)
    # credit per example split equally among the heads tied at the best tau (ties are common on short inputs)
    filled = np.where(np.isfinite(taus[valid]), taus[valid], -np.inf)
    winners = filled == filled.max(axis=1, keepdims=True)
    credit = winners / winners.sum(axis=1, keepdims=True)
    rows = []
    for j, (layer, head) in enumerate(grid):
        e = effects[(effects["layer"] == layer) & (effects["head"] == head)].set_index("example")
        drop = (full["p_pred"] - e["p_pred"]).to_numpy()
        acc_drop = (full["correct"].astype(float) - e["correct"].astype(float)).to_numpy()
        lo, hi = bootstrap_ci(drop, seed=seed)
        alo, ahi = bootstrap_ci(acc_drop, seed=seed)
        rows.append({"dataset": m.dataset, "model": m.kind, "seed": m.seed, "layer": layer + 1, "head": head,
                     "accuracy": float(e["correct"].mean()), "accuracy_drop": float(acc_drop.mean()),
                     "accuracy_drop_ci_low": alo, "accuracy_drop_ci_high": ahi,
                     "prob_drop": float(drop.mean()), "prob_drop_ci_low": lo, "prob_drop_ci_high": hi,
                     "cls_entropy": float(np.nanmean(entropy[:, j])), "tau_top_k_loo": float(np.nanmean(taus[:, j])),
                     "explanation_share": float(credit[:, j].mean()) if valid.any() else np.nan,
                     "n": len(drop)})
    return pd.DataFrame(rows)


def pruning_curve(study: TransformerStudy, m: TrainedTransformer, steps: int = 8, seed: int = 0,
                  cap: int | None = None) -> pd.DataFrame:
    """Accuracy on the analysis (test) rows, with a bootstrap CI, after removing ``n`` heads, for ``steps + 1``
    values of ``n`` from 0 to all heads, in three orders: least important first (importance = probability drop
    on at most ``cap`` *dev* rows, so the order is not chosen on the test rows), most important first, and
    random."""
    dev = ablation_effects(study, m, split="dev", cap=cap)
    full = dev[dev["layer"] == -1].set_index("example")["p_pred"]
    drops = {(l, h): float((full - g.set_index("example")["p_pred"]).mean())
             for (l, h), g in dev[dev["layer"] >= 0].groupby(["layer", "head"])}
    grid = _head_grid(m.model)
    least_first = sorted(grid, key=lambda lh: drops[lh])
    orders = {"least_important_first": least_first, "most_important_first": least_first[::-1],
              "random": [grid[i] for i in np.random.default_rng(seed).permutation(len(grid))]}
    test = study.encoded(m.dataset, m.kind)["analysis"]
    labels = np.asarray(test.labels)
    counts = sorted({int(round(x)) for x in np.linspace(0, len(grid), steps + 1)})

    def compute() -> pd.DataFrame:
        rows = []
        for order, heads in orders.items():
            for n in counts:
                mask = torch.ones(m.model.cfg.layers, m.model.cfg.heads)
                for layer, head in heads[:n]:
                    mask[layer, head] = 0.0
                predicted = predict_probabilities(m.model, test, study.device, head_mask=mask).argmax(1)
                correct = (predicted == labels).astype(float)
                lo, hi = bootstrap_ci(correct, seed=seed)
                rows.append({"dataset": m.dataset, "model": m.kind, "seed": m.seed, "order": order,
                             "heads_pruned": n, "fraction_pruned": n / len(grid), "accuracy": float(correct.mean()),
                             "ci_low": lo, "ci_high": hi, "n": len(correct)})
        return pd.DataFrame(rows)

    key = study.model_key(m) | {"pruning": counts, "orders": {k: v for k, v in orders.items()}, "seed": seed}
    return study.cache.get_or_compute("internals_pruning", key, compute)


# ----- where the decision forms -----------------------------------------------------------------------

@torch.no_grad()
def cls_states(study: TransformerStudy, m: TrainedTransformer, split: EncodedSplit) -> np.ndarray:
    """``[N, layers + 1, d]``: the [CLS] hidden state after the embeddings and after every layer."""
    m.model.eval()
    out = []
    for _, b in _batches(split, 32):
        b = b.to(study.device)
        hidden = m.model(b.ids, b.mask).hidden_states
        out.append(torch.stack([h[:, 0] for h in hidden], 1).float().cpu().numpy())
    return np.concatenate(out)


def layer_readout(study: TransformerStudy, m: TrainedTransformer, probe_train: int | None = 2000,
                  seed: int = 0, control_permutations: int = 10) -> pd.DataFrame:
    """Per layer (0 = embeddings): test accuracy of a linear probe on the [CLS] state, of the same probe
    trained on shuffled labels (a control that must stay at chance), and of the logit lens (the model's own
    pooler + classifier on that layer's [CLS] state), plus the lens's agreement with the model's prediction.
    Probes are trained on (at most ``probe_train``) training rows; accuracies carry bootstrap CIs.

    The shuffled-label control is trained on ``control_permutations`` independent permutations of the
    training labels: its row gives their mean accuracy, and ``ci_low``/``ci_high`` are the 2.5 / 97.5 %
    quantiles *over the permutations* (``control_draws`` of them). One permutation is not enough where the
    states fall into class clusters: the probe then learns whatever cluster imbalance that permutation
    has, and its test accuracy varies with a standard deviation of about 0.2 (the planted task)."""
    if control_permutations < 1:
        raise ValueError(f"control_permutations must be at least 1, got {control_permutations}")
    train = _split(study, m, "train", probe_train, seed=seed)
    test = study.encoded(m.dataset, m.kind)["analysis"]

    def compute() -> pd.DataFrame:
        x_train, x_test = cls_states(study, m, train), cls_states(study, m, test)
        y_train, y_test = np.asarray(train.labels), np.asarray(test.labels)
        rng = np.random.default_rng(seed)
        shuffled = [rng.permutation(y_train) for _ in range(control_permutations)]
        with torch.no_grad():
            final = m.model.classifier(torch.tanh(m.model.pooler(torch.as_tensor(x_test[:, -1]).to(study.device))))
            model_pred = final.argmax(-1).cpu().numpy()
        chance = float(np.bincount(y_test).max() / len(y_test))
        rows = []

        def fit_predict(layer: int, labels: np.ndarray) -> np.ndarray:
            probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
            probe.fit(x_train[:, layer], labels)
            return probe.predict(x_test[:, layer])

        def add(layer: int, name: str, accuracy: float, lo: float, hi: float, agreement: float, draws: int):
            rows.append({"dataset": m.dataset, "model": m.kind, "seed": m.seed, "layer": layer, "readout": name,
                         "accuracy": float(accuracy), "ci_low": float(lo), "ci_high": float(hi),
                         "agreement_with_model": float(agreement), "chance": chance, "control_draws": draws,
                         "n": len(y_test)})

        def add_scored(layer: int, name: str, pred: np.ndarray):
            correct = (pred == y_test).astype(float)
            add(layer, name, correct.mean(), *bootstrap_ci(correct, seed=seed), (pred == model_pred).mean(), 0)

        for layer in range(x_train.shape[1]):
            add_scored(layer, "probe", fit_predict(layer, y_train))
            preds = [fit_predict(layer, labels) for labels in shuffled]
            accs = np.array([(p == y_test).mean() for p in preds])
            add(layer, "probe_shuffled_labels", accs.mean(), *np.quantile(accs, [0.025, 0.975]),
                np.mean([(p == model_pred).mean() for p in preds]), control_permutations)
            with torch.no_grad():
                h = torch.as_tensor(x_test[:, layer]).to(study.device)
                lens = m.model.classifier(torch.tanh(m.model.pooler(h))).argmax(-1).cpu().numpy()
            add_scored(layer, "logit_lens", lens)
        return pd.DataFrame(rows)

    key = study.model_key(m) | {"readout": "cls", "probe_train": probe_train, "seed": seed,
                                "control_permutations": control_permutations}
    return study.cache.get_or_compute("internals_readout", key, compute)


# ----- the encoder-decoder ------------------------------------------------------------------------------

def seq2seq_head_importance(study, m, seed: int = 0) -> pd.DataFrame:
    """Per encoder-self, decoder-self and cross-attention head of a seq2seq model: the mean drop in log p of
    each generated token (teacher-forced on the model's own greedy output) when that head is ablated, with a
    CI resampling sentences, and the share of tokens whose greedy choice changes."""
    columns = ["task", "variant", "seed", "kind", "layer", "head", "logp_drop", "ci_low", "ci_high",
               "token_change_rate", "n_tokens", "n_sentences"]
    pairs, index = _generated_pairs(study, m)
    if not pairs:       # the model generated nothing but EOS (an untrained smoke model): no decision to ablate
        return pd.DataFrame(columns=columns)
    cfg = m.model.cfg
    kinds = {"encoder_self": cfg.encoder_layers, "decoder_self": cfg.decoder_layers, "cross": cfg.decoder_layers}

    def compute() -> pd.DataFrame:
        rows = []
        with torch.no_grad():
            for start, b in s2s_batches(pairs, 32):
                b = b.to(study.device)
                full = torch.log_softmax(m.model(b.src, b.src_mask, b.tgt_in, b.tgt_mask).logits, -1)
                tokens = b.tgt_out.clamp(min=0)
                base = full.gather(-1, tokens[..., None])[..., 0]
                steps = b.tgt_mask.clone()
                steps[torch.arange(len(b)), b.tgt_mask.sum(1) - 1] = False        # the EOS step is left out
                for kind, layers in kinds.items():
                    for layer in range(layers):
                        for head in range(cfg.heads):
                            masks = {k: torch.ones(n, cfg.heads, device=study.device) for k, n in kinds.items()}
                            masks[kind][layer, head] = 0.0
                            out = torch.log_softmax(m.model(b.src, b.src_mask, b.tgt_in, b.tgt_mask,
                                                            head_masks=masks).logits, -1)
                            drop = base - out.gather(-1, tokens[..., None])[..., 0]
                            changed = out.argmax(-1) != tokens
                            for i in range(len(b)):
                                s = steps[i]
                                rows.append({"kind": kind, "layer": layer + 1, "head": head,
                                             "example": index[start + i],
                                             "drop_sum": float(drop[i][s].sum()), "changed_sum": float(changed[i][s].sum()),
                                             "tokens": int(s.sum())})
        return pd.DataFrame(rows)

    key = study.model_key(m) | {"what": "head_ablation"}
    per = study.cache.get_or_compute("internals_seq2seq_ablation", key, compute)
    out = []
    for (kind, layer, head), g in per.groupby(["kind", "layer", "head"], sort=False):
        g = g[g["tokens"] > 0]
        # the token-weighted mean, and its CI from resampling sentences (ratio of resampled sums)
        drops, tokens = g["drop_sum"].to_numpy(), g["tokens"].to_numpy()
        rng = np.random.default_rng(seed)
        boot = [drops[idx].sum() / tokens[idx].sum()
                for idx in (rng.integers(0, len(g), len(g)) for _ in range(1000))]
        lo, hi = (float(x) for x in np.quantile(boot, [0.025, 0.975]))
        out.append({"task": m.task, "variant": m.variant, "seed": m.seed, "kind": kind, "layer": layer, "head": head,
                    "logp_drop": float(g["drop_sum"].sum() / g["tokens"].sum()), "ci_low": lo, "ci_high": hi,
                    "token_change_rate": float(g["changed_sum"].sum() / g["tokens"].sum()),
                    "n_tokens": int(g["tokens"].sum()), "n_sentences": len(g)})
    return pd.DataFrame(out, columns=columns)
