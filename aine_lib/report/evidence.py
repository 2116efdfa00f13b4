"""The evidence each of the study's questions draws from its tables, one function per part of the study.

Each function reads the tables one config run wrote and returns Markdown bullets: every number is read
from a table, never typed in; a part whose notebook has not been run yet gives a *Pending* bullet.
Each bullet names the chapter and table it comes from. :mod:`aine_lib.report.findings` assembles
them into the answers.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def _read(tables: Path, name: str) -> pd.DataFrame | None:
    path = tables / f"{name}.csv"
    return pd.read_csv(path) if path.exists() else None


def _num(value: float, digits: int = 2) -> str:
    return "n/a" if pd.isna(value) else f"{value:.{digits}f}"


def _pct(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.0%}"


def _ci(value: float, low: float, high: float, digits: int = 2) -> str:
    return f"{_num(value, digits)} [{_num(low, digits)}, {_num(high, digits)}]"

#: below this median TVD a permutation "barely moves" the output (J&W's Figure 6 reads < 0.05 as "little")
SMALL_TVD = 0.05


def _pending(notebook: str) -> str:
    return f"*Pending: notebook `{notebook}` has not been run on this config yet.*"


def _rnn_inputs(tables: Path) -> list[str]:
    out = []
    tau = _read(tables, "jw_tau")
    if tau is None:
        out.append(_pending("02_attention_vs_gradients"))
    else:
        t = tau[(tau["encoder"] == "lstm") & (tau["attention"] == "additive")]
        parts = []
        for dataset, g in t.groupby("dataset", sort=False):
            v = g.set_index("comparison")
            if {"attention~loo", "gradient~loo"} <= set(v.index):
                parts.append(f"{dataset}: τ(attention, LOO) {_ci(*v.loc['attention~loo', ['tau_mean', 'tau_ci_low', 'tau_ci_high']])}"
                             f" vs τ(gradient, LOO) {_ci(*v.loc['gradient~loo', ['tau_mean', 'tau_ci_low', 'tau_ci_high']])}")
        pivot = tau.pivot_table(index=["dataset", "encoder", "attention"], columns="comparison", values="tau_mean")
        if {"attention~loo", "gradient~loo"} <= set(pivot.columns):
            wins = int((pivot["gradient~loo"] > pivot["attention~loo"]).sum())
            out.append(f"**Attention vs leave-one-out**: gradients agree with leave-one-out more than attention "
                       f"does in {wins} of {len(pivot)} dataset × encoder × attention cells (Kendall τ; chapter "
                       f"02, `jw_tau.csv`). BiLSTM, additive: " + "; ".join(parts) + ".")
    perm = _read(tables, "permutation")
    if perm is None:
        out.append(_pending("03_permutation"))
    else:
        med = perm.groupby("attention")["output_change_median"].median()
        verdict = [f"{a} attention {v:.3f} ({'barely moves' if v < SMALL_TVD else 'moves'} the output)"
                   for a, v in med.items()]
        out.append("**Permuting attention**: median over models and max-attention bins of the median output "
                   "change (TVD) when attention is shuffled, " + ", ".join(verdict) +
                   f"; below {SMALL_TVD} counts as barely (chapter 03, `permutation.csv`).")
    adv = _read(tables, "adversarial")
    if adv is None:
        out.append(_pending("04_adversarial"))
    else:
        a = adv[(adv["encoder"] == "lstm") & (adv["attention"] == "additive")]
        out.append("**Adversarial attention**: share of test instances for which an attention distribution "
                   "at JSD > 0.5 from the original keeps the output within ε, BiLSTM additive: " + "; ".join(
                       f"{r['dataset']} {_ci(r['frac_jsd_gt_0.5'], r['frac_ci_low'], r['frac_ci_high'])}"
                       for _, r in a.iterrows()) +
                   " (chapter 04, `adversarial.csv`).")
    uni = _read(tables, "uniform_baseline")
    if uni is None:
        out.append(_pending("05_uniform_and_seeds"))
    else:
        u = uni[(uni["encoder"] == "lstm") & (uni["attention"] == "additive")]
        better = int(((uni["f1_gap_mean"] > 0) & (uni["f1_gap_min"] > 0)).sum())
        out.append("**Uniform attention baseline** (Wiegreffe & Pinter): learned attention beats uniform attention "
                   f"on every seed in {better} of {len(uni)} dataset × encoder × attention cells; F1 gap "
                   "(learned − uniform, mean ± sd over seeds), BiLSTM additive: " + "; ".join(
                       f"{r.dataset} {r.f1_gap_mean:+.3f} ± {r.f1_gap_std:.3f}" for r in u.itertuples()) +
                   " (chapter 05, `uniform_baseline.csv`).")
    era = _read(tables, "erasure")
    if era is None:
        out.append(_pending("07_erasure"))
    else:
        e = era[(era["encoder"] == "lstm") & (era["attention"] == "additive")]
        med = e.groupby("order")["fraction_median"].median()
        if {"attention", "gradient"} <= set(med.index):
            head = ("attention needs fewer erased tokens than gradients" if med["attention"] < med["gradient"]
                    else "attention needs at least as many erased tokens as gradients")
        else:
            head = "erasure orders compared"
        out.append(f"**Erasure until the decision flips** (Serrano & Smith): {head}; median "
                   "share of tokens erased before the decision flips, " +
                   ", ".join(f"{o} order {v:.2f}" for o, v in med.sort_values().items()) +
                   " (BiLSTM additive, median over datasets; chapter 07, `erasure.csv`).")
    return out


def _transformer_inputs(tables: Path) -> list[str]:
    faith = _read(tables, "faithfulness")
    if faith is None:
        return [_pending("09_faithfulness")]
    f = faith[(faith["model"] == "minilm") & (faith["mode"] == "remove")
              & (faith["metric"] == "aopc_comprehensiveness")]
    if f.empty:
        return []
    out = []
    for dataset, g in f.groupby("dataset", sort=False):
        g = g.sort_values("value", ascending=False)
        rank = {m: i + 1 for i, m in enumerate(g["method"])}
        attn = [m for m in g["method"] if m.startswith("attention")]
        best = g.iloc[0]
        random = g[g["method"] == "random"]
        text = (f"{dataset}: best {best['method']} {_ci(best['value'], best['ci_low'], best['ci_high'], 3)}; " +
                ", ".join(f"{m} rank {rank[m]} of {len(g)}" for m in attn))
        if len(random):
            r = random.iloc[0]
            text += f"; random {_ci(r['value'], r['ci_low'], r['ci_high'], 3)}"
        out.append(text)
    return ["**Transformer (fine-tuned MiniLM) faithfulness**: ERASER AOPC comprehensiveness (token removal, "
            "higher = more faithful), best method and the rank of raw attention among all methods — " +
            "; ".join(out) +
            " (chapter 09, `faithfulness.csv`)."]


def _internal(tables: Path) -> list[str]:
    out = []
    lh = _read(tables, "layer_head_agreement")
    if lh is None:
        out.append(_pending("10_layers_heads"))
    else:
        heads = lh[lh["head"].astype(str).str.fullmatch(r"\d+")]
        for (dataset, reference), g in heads.groupby(["dataset", "reference"], sort=False):
            best = g.sort_values("tau_top_k", ascending=False).iloc[0]
            floor = lh[(lh["dataset"] == dataset) & (lh["reference"] == reference)
                       & (lh["head"].astype(str) == "random")]
            text = (f"{dataset} vs {reference}: best single head L{best['layer']} H{best['head']} top-k τ "
                    f"{_ci(best['tau_top_k'], best['ci_low'], best['ci_high'])}")
            if len(floor):
                text += f", random floor {floor['tau_top_k'].mean():.2f}"
            out.append(text)
        out = ["**Single heads vs attributions** (top-k Kendall τ of each head's CLS attention with the "
               "reference; the best head and the random floor): " + "; ".join(out) +
               " (chapter 10, `layer_head_agreement.csv`)."]
    al = _read(tables, "alignment")
    if al is None:
        out.append(_pending("12_cross_attention_alignment"))
    else:
        a = al[al["variant"] == "softmax"].groupby(["task", "method"])["aer"].mean().reset_index()
        parts = []
        for task, g in a.groupby("task", sort=False):
            v = g.set_index("method")["aer"]
            heads = v[[m for m in v.index if m.startswith("cross L") and not m.endswith("mean")]]
            parts.append(f"{task}: best head {heads.idxmin()} {heads.min():.2f}, head mean "
                         f"{v.get(sorted(m for m in v.index if m.endswith('mean') and m.startswith('cross'))[-1], float('nan')):.2f}, "
                         f"IG {v.get('integrated_gradients', float('nan')):.2f}, LOO {v.get('loo', float('nan')):.2f}, "
                         f"random {v.get('random', float('nan')):.2f}")
        out.append("**Cross-attention as alignment** (AER, lower is better, mean over seeds): " + "; ".join(parts) +
                   " (chapter 12, `alignment.csv`).")
    return out + _inside(tables)


def _inside(tables: Path) -> list[str]:
    """Notebook 16: does the head whose attention 'explains' matter to the computation; where the decision forms."""
    corr = _read(tables, "head_importance_correlations")
    if corr is None:
        return [_pending("16_internals")]
    out = []
    c = corr[corr["head property"] == "explanation_share"]
    parts = [f"{r.dataset}/{r.model}: Spearman ρ {_num(r.spearman_with_prob_drop)} (p = {_num(r.p_value, 3)}, "
             f"{r.heads} heads)" for r in c.itertuples()]
    out.append("**Do the heads whose attention explains best matter most?** Rank correlation between how often "
               "a head's [CLS] attention is the one closest to leave-one-out and the drop in p(prediction) when "
               "that head is ablated: " + "; ".join(parts) + " (chapter 16, `head_importance_correlations.csv`).")
    pruning = _read(tables, "head_pruning")
    if pruning is not None:
        parts = []
        for (dataset, model), g in pruning.groupby(["dataset", "model"], sort=False):
            half = g.loc[(g["fraction_pruned"] - 0.5).abs().groupby(g["order"]).idxmin()].set_index("order")
            full = g[g["heads_pruned"] == 0]["accuracy"].iloc[0]
            parts.append(f"{dataset}/{model}: accuracy {_num(full)} with every head, "
                         f"{_num(half.loc['least_important_first', 'accuracy'])} without the least important "
                         f"{_pct(half.loc['least_important_first', 'fraction_pruned'])}, "
                         f"{_num(half.loc['most_important_first', 'accuracy'])} without the most important")
        out.append("**Pruning heads** (order set on dev, accuracy on test): " + "; ".join(parts) +
                   " (chapter 16, `head_pruning.csv`).")
    readout = _read(tables, "layer_readout")
    if readout is not None:
        parts = []
        for (dataset, model), g in readout.groupby(["dataset", "model"], sort=False):
            probe = g[g["readout"] == "probe"].sort_values("layer")
            above = probe[probe["ci_low"] > probe["chance"]]
            control = g[g["readout"] == "probe_shuffled_labels"]["accuracy"].max()
            parts.append(f"{dataset}/{model}: the class is linearly readable from layer "
                         f"{int(above['layer'].iloc[0]) if len(above) else 'none'} of {int(probe['layer'].max())} "
                         f"(probe CI above the majority class {_num(probe['chance'].iloc[0])}); the shuffled-label "
                         f"control peaks at {_num(control)}")
        out.append("**Where the decision forms** (linear probes on each layer's [CLS] state): " + "; ".join(parts) +
                   " (chapter 16, `layer_readout.csv`).")
    return out


_VERDICT = {"better": "better", "worse": "worse", "no_difference": "no difference",
            "attention_better": "attention better", "attention_worse": "attention worse"}


def _ensembles(tables: Path) -> list[str]:
    """Notebook 17: are explanation ensembles more faithful than their best member; stability across seeds."""
    vs = _read(tables, "ensembles_vs_best_member")
    if vs is None:
        return [_pending("17_explanation_ensembles")]
    v = vs[(vs["mode"] == "remove") & (vs["metric"] == "aopc_comprehensiveness")]
    parts = [f"{r.dataset}/{r.model} {r.ensemble} vs {r.best_member}: {_VERDICT.get(r.verdict, r.verdict)} "
             f"(paired gain {_ci(r.gain, r.gain_ci_low, r.gain_ci_high, 3)})" for r in v.itertuples()]
    out = ["**Explanation ensembles** (AOPC comprehensiveness, token removal, paired by example against the best "
           "member, which is picked on the same examples and so flattered): " + "; ".join(parts) +
           " (chapter 17, `ensembles_vs_best_member.csv`)."]
    table = _read(tables, "ensembles")
    if table is not None:
        st = table[table["part"] == "seed_stability"]
        parts = []
        for (dataset, model), g in st.groupby(["dataset", "model"], sort=False):
            g = g.sort_values("value")
            parts.append(f"{dataset}/{model}: least stable {g.iloc[0]['method']} τ {_num(g.iloc[0]['value'])}, "
                         f"most stable {g.iloc[-1]['method']} τ {_num(g.iloc[-1]['value'])}")
        if parts:
            out.append("**Stability across training seeds** (Kendall τ between the explanations of re-seeded "
                       "models): " + "; ".join(parts) + " (chapter 17, `ensembles.csv`).")
    return out


def _generation(tables: Path) -> list[str]:
    sf = _read(tables, "seq2seq_faithfulness")
    if sf is None:
        return [_pending("13_generation_decisions")]
    s = sf[sf["variant"] == "softmax"]
    parts = []
    for task, g in s.groupby("task", sort=False):
        v = g.set_index("metric")
        parts.append(f"{task}: erasing the most-attended source token lowers log p(token) by "
                     f"{_ci(*v.loc['erase_top_attention', ['value', 'ci_low', 'ci_high']], digits=3)}, the LOO-best "
                     f"{_num(v.loc['erase_top_loo', 'value'], 3)}, a random one {_num(v.loc['erase_random', 'value'], 3)}; "
                     f"top attention is the LOO-best token for {_pct(v.loc['top_attention_is_top_loo', 'value'])} of "
                     f"tokens; permuting all cross-attention changes {_pct(v.loc['permutation_change_rate', 'value'])} "
                     f"of them")
    out = ["**Per generated token**: " + "; ".join(parts) + " (chapter 13, `seq2seq_faithfulness.csv`)."]
    var = _read(tables, "seq2seq_variants")
    if var is not None:
        parts = [f"{r.task} {r.variant}: AER of head 0 {_num(r.aer_cross_last_head0)}, top head 0 = LOO-best "
                 f"{_pct(r.top_head0_is_top_loo)}, BLEU {_num(r.bleu, 1)}" for r in var.itertuples()]
        out.append("**Sparse (entmax-1.5) and alignment-supervised cross-attention** (head 0 of the last decoder "
                   "layer is the supervised one): " + "; ".join(parts) +
                   " (chapter 13, `seq2seq_variants.csv`).")
    return out


def _decay(tables: Path) -> list[str]:
    """The decay curve's peak against how often the most-attended token is the one the decision needs."""
    mass = _read(tables, "seq2seq_attention_decay")
    sf = _read(tables, "seq2seq_faithfulness")
    peaked = _read(tables, "seq2seq_peakedness")
    if mass is None or sf is None or peaked is None:
        return [_pending("13_generation_decisions")]
    last = mass[mass["layer"] == mass.groupby("task")["layer"].transform("max")]
    peak = last[last["distance"] == 0].groupby("task", sort=False)["mass"].mean()
    top = sf[(sf["variant"] == "softmax") & (sf["metric"] == "top_attention_is_top_loo")].set_index("task")
    bins = peaked[(peaked["variant"] == "softmax") & (peaked["share_of_steps"] >= 0.05)]
    parts = []
    for task, value in peak.items():
        if task not in top.index:
            continue
        text = (f"{task}: {_num(value)} of the last layer's attention at distance 0, yet the most-attended "
                f"token is the LOO-best for {_pct(top.loc[task, 'value'])} of tokens")
        b = bins[bins["task"] == task].sort_values("attention_max_low")
        if len(b) > 1:
            flat, sharp = b.iloc[0], b.iloc[-1]
            text += (f" ({_pct(flat['top_attention_is_top_loo'])} where the largest weight is "
                     f"≤ {_num(flat['attention_max_high'], 1)}, {_pct(flat['share_of_steps'])} of steps; "
                     f"{_pct(sharp['top_attention_is_top_loo'])} where it is > {_num(sharp['attention_max_low'], 1)})")
        parts.append(text)
    if not parts:
        return []
    return ["**Decay curves** (mean cross-attention mass on the aligned source token, softmax models): the "
            "average curve peaks where it should, but it cannot tell the steps where attention points "
            "elsewhere than the decision needs: " + "; ".join(parts) +
            " (chapter 13, `seq2seq_attention_decay.csv`, `seq2seq_peakedness.csv`)."]


# ----- notebook 14 (scaling) ---------------------------------------------------------------------------

#: the attention method that stands for each family in the scaling answers (as in the scaling figures)
_FAMILY_ATTENTION = {"average": "attention", "cnn": "attention", "lstm": "attention",
                     "scratch": "attention_cls_last", "minilm": "attention_cls_last"}


def _family_rows(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    t = table[(table["metric"] == metric)]
    keep = t["method"] == t["family"].map(_FAMILY_ATTENTION)
    return t[keep]


def _scaling_models(tables: Path) -> list[str]:
    data = _read(tables, "scaling_data")
    tests = _read(tables, "scaling_tests")
    if data is None or tests is None:
        return [_pending("14_scaling")]
    out = []
    t = tests[(tests["grid"] == "data") & (tests["fraction"] == tests["fraction"].max())
              & (tests["metric"] == "aopc_comprehensiveness")]
    t = t[t["attention_method"] == t["family"].map(_FAMILY_ATTENTION)]
    parts = []
    for dataset, g in t.groupby("dataset", sort=False):
        g = g.sort_values("difference", ascending=False)
        parts.append(f"{dataset}: " + "; ".join(
            f"{r.family} {_ci(r.difference, r.ci_low, r.ci_high, 3)} vs {r.best_other} "
            f"({_VERDICT.get(r.verdict, r.verdict)}, d_z {_num(r.effect_size_dz)}, q = {_num(r.q_value, 3)})"
            for r in g.itertuples()))
    if parts:
        out.append("**Which models' attention is most faithful, relative to the same model's best other method** "
                   "(AOPC comprehensiveness of attention minus that of the best non-attention method, all the "
                   "training data, paired by example, CIs over seeds and examples, Benjamini-Hochberg over the "
                   "table; the best method is picked on the same examples, which flatters it; families ordered "
                   "by the gap): " + "; ".join(parts) + " (chapter 14, `scaling_tests.csv`).")
    d = data[data["grid"] == "data"]
    d = d[d["fraction"] == d["fraction"].max()]
    parts = []
    for dataset, g in _family_rows(d, "tau_loo_length_std").groupby("dataset", sort=False):
        g = g.sort_values("value", ascending=False)
        parts.append(f"{dataset}: " + ", ".join(f"{r.family} {_ci(r.value, r.ci_low, r.ci_high)}"
                                                 for r in g.itertuples()))
    if parts:
        out.append("**Agreement of attention with leave-one-out** (length-standardised Kendall τ, all the "
                   "training data; MiniLM ranks word pieces, the others words, so compare within a row "
                   "with care): " + "; ".join(parts) + " (chapter 14, `scaling_data.csv`).")
    size = _read(tables, "scaling_model")
    if size is not None:
        parts = []
        for dataset, g in _family_rows(size, "aopc_comprehensiveness").groupby("dataset", sort=False):
            lo, hi = g.loc[g["value"].idxmin()], g.loc[g["value"].idxmax()]
            parts.append(f"{dataset}: from {_ci(lo['value'], lo['ci_low'], lo['ci_high'])} "
                         f"(L{int(lo['layers'])} d{int(lo['hidden'])}) to {_ci(hi['value'], hi['ci_low'], hi['ci_high'])} "
                         f"(L{int(hi['layers'])} d{int(hi['hidden'])})")
        if parts:
            out.append("**Model size** (scratch Transformer, AOPC comprehensiveness of last-layer [CLS] attention "
                       "over the depth x width grid): " + "; ".join(parts) + " (chapter 14, `scaling_model.csv`).")
    return out


def _scaling_data(tables: Path) -> list[str]:
    data = _read(tables, "scaling_data")
    if data is None:
        return [_pending("14_scaling")]
    d = data[data["grid"] == "data"]
    out = []
    for metric, label in (("accuracy", "test accuracy"), ("aopc_comprehensiveness", "AOPC comprehensiveness of "
                                                                                    "attention"),
                          ("tau_loo_length_std", "length-standardised τ(attention, LOO)")):
        rows = d[d["metric"] == "accuracy"] if metric == "accuracy" else _family_rows(d, metric)
        parts = []
        for (dataset, family), g in rows.groupby(["dataset", "family"], sort=False):
            g = g.sort_values("fraction")
            first, last = g.iloc[0], g.iloc[-1]
            moved = ("up" if first["ci_high"] < last["ci_low"] else "down" if first["ci_low"] > last["ci_high"]
                     else "no clear change")
            parts.append(f"{dataset}/{family} {_num(first['value'])} at {_pct(first['fraction'])} → "
                         f"{_num(last['value'])} at {_pct(last['fraction'])} ({moved})")
        out.append(f"**{label[0].upper() + label[1:]} against the share of training data** (the smallest and "
                   "the largest share; 'up'/'down' only where the two CIs do not overlap): " + "; ".join(parts) +
                   " (chapter 14, `scaling_data.csv`).")
    return out
