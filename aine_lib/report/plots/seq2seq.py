"""Encoder-decoder figures (notebooks 11-13).

``f(df) -> Figure``: they draw tidy DataFrames; they never compute or save.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from aine_lib.report.plots.style import _err, _facet


def training_curves(histories: pd.DataFrame) -> plt.Figure:
    """Train and dev loss per epoch, one panel per task, one line per seed (``histories``: task, epoch,
    train_loss, dev_loss, and optionally seed)."""
    tasks = list(dict.fromkeys(histories["task"]))
    fig, axes = _facet(len(tasks), width=3.0, height=2.4)
    for ax, task in zip(axes, tasks):
        sub = histories[histories["task"] == task]
        # one line per seed (a single line through all seeds would join one seed's last epoch to the next's first)
        groups = sub.groupby("seed", sort=False) if "seed" in sub else [(None, sub)]
        for i, (_, run) in enumerate(groups):
            ax.plot(run["epoch"], run["train_loss"], "o-", ms=3, color="C0", lw=1,
                    label="train (label-smoothed)" if i == 0 else None)
            ax.plot(run["epoch"], run["dev_loss"], "s-", ms=3, color="C1", lw=1, label="dev" if i == 0 else None)
        ax.set_yscale("log")
        ax.set_title(task)
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy per token" if ax is axes[0] else "")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def aer_points(table: pd.DataFrame) -> plt.Figure:
    """AER (lower is better) with bootstrap CIs per method, one panel per task; heads shown separately."""
    # one point per method: mean over seeds, the CI spans the seeds' CIs
    table = table.groupby(["task", "method", "kind"], as_index=False, sort=False).agg(
        aer=("aer", "mean"), ci_low=("ci_low", "min"), ci_high=("ci_high", "max"))
    tasks = list(dict.fromkeys(table["task"]))
    fig, axes = _facet(len(tasks), width=3.4, height=3.6)
    for ax, task in zip(axes, tasks):
        sub = table[table["task"] == task].sort_values("aer")
        y = np.arange(len(sub))
        colors = ["0.55" if k != "method" else "C0" for k in sub["kind"]]
        ax.scatter(sub["aer"], y, c=colors, s=12, zorder=3)
        ax.errorbar(sub["aer"], y, xerr=_err(sub["aer"], sub["ci_low"], sub["ci_high"]), fmt="none",
                    ecolor="0.6", lw=0.7)
        ax.set_yticks(y, sub["method"], fontsize=5.5)
        ax.set_xlim(-0.02, 1.02)
        ax.set_title(task)
        ax.set_xlabel("alignment error rate")
    fig.tight_layout()
    return fig


def alignment_maps(examples: list[dict]) -> plt.Figure:
    """Per example, one row of panels: each method's step x source matrix with the gold links marked."""
    methods = list(examples[0]["scores"])
    fig, axes = plt.subplots(len(examples), len(methods), figsize=(2.0 * len(methods), 2.0 * len(examples)),
                             squeeze=False)
    for i, ex in enumerate(examples):
        for j, method in enumerate(methods):
            ax = axes[i][j]
            m = np.asarray(ex["scores"][method], dtype=float)
            scale = np.abs(m).max() or 1.0
            ax.imshow(m / scale, cmap="vlag", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
            for t, s in ex["alignment"]:
                ax.add_patch(plt.Rectangle((s - 0.5, t - 0.5), 1, 1, fill=False, ec="black", lw=0.8))
            ax.set_xticks(range(len(ex["source"])), ex["source"], fontsize=5, rotation=90)
            ax.set_yticks(range(len(ex["target"])), ex["target"], fontsize=5)
            ax.grid(False)
            if i == 0:
                ax.set_title(method, fontsize=7)
            if j == 0:
                ax.set_ylabel(ex["task"], fontsize=7)
    fig.tight_layout()
    return fig


def decay_curves(mass: pd.DataFrame, entropy: pd.DataFrame) -> plt.Figure:
    """Left: cross-attention mass by distance from the aligned source token, one line per task x layer.
    Right: cross-attention entropy (normalised by log S) by target position."""
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.0))
    m = mass.groupby(["task", "layer", "distance"], as_index=False)["mass"].mean()
    for (task, layer), g in m.groupby(["task", "layer"], sort=False):
        axes[0].plot(g["distance"], g["mass"], marker="o", ms=2.5, lw=0.9, ls="-" if layer > 1 else ":",
                     label=f"{task} L{layer}")
    axes[0].set_xlabel("source position − aligned source position")
    axes[0].set_ylabel("mean cross-attention (head mean)")
    axes[0].legend(fontsize=5.5, ncol=2)
    e = entropy.assign(normalised=entropy["entropy"] / entropy["max_entropy"].clip(lower=1e-9))
    e = e.groupby(["task", "layer", "position"], as_index=False)["normalised"].mean()
    for (task, layer), g in e.groupby(["task", "layer"], sort=False):
        axes[1].plot(g["position"], g["normalised"], marker="o", ms=2.5, lw=0.9, ls="-" if layer > 1 else ":",
                     label=f"{task} L{layer}")
    axes[1].set_xlabel("target position")
    axes[1].set_ylabel("entropy / log(source length)")
    fig.tight_layout()
    return fig


def erasure_bars(table: pd.DataFrame) -> plt.Figure:
    """Drop in log p(generated token) when one source token is removed, chosen by each rule (with CIs)."""
    rules = ["erase_random", "erase_top_attention", "erase_top_ig", "erase_top_loo"]
    t = table[table["metric"].isin(rules)]
    tasks = list(dict.fromkeys(t["task"]))
    fig, ax = plt.subplots(figsize=(1.6 * len(tasks) + 2, 2.8))
    width = 0.8 / len(rules)
    for i, rule in enumerate(rules):
        sub = t[t["metric"] == rule].set_index("task").reindex(tasks)
        x = np.arange(len(tasks)) + (i - (len(rules) - 1) / 2) * width
        ax.bar(x, sub["value"], width, yerr=_err(sub["value"], sub["ci_low"], sub["ci_high"]),
               capsize=2, label=rule.replace("erase_", ""))
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("drop in log p(generated token)")
    ax.legend(fontsize=6, title="source token removed", title_fontsize=6)
    fig.tight_layout()
    return fig


def peakedness_points(table: pd.DataFrame, min_tokens: int = 20) -> plt.Figure:
    """Per bin of the step's largest cross-attention weight: how often the most-attended source token is the
    LOO-best one, and the permutation change rate (with CIs), one line per task (softmax models). Bins with
    fewer than ``min_tokens`` generated tokens are left out of the plot (they stay in the table)."""
    t = table[table["variant"] == "softmax"] if "variant" in table else table
    t = t[t["n_tokens"] >= min_tokens]
    panels = [("top_attention_is_top_loo", "most-attended token = top-LOO token"),
              ("permutation_change_rate", "permuting attention changes the token")]
    fig, axes = plt.subplots(1, len(panels), figsize=(7.2, 2.9))
    for ax, (metric, label) in zip(axes, panels):
        for k, (task, g) in enumerate(t.groupby("task", sort=False)):
            x = (g["attention_max_low"] + g["attention_max_high"]) / 2
            ax.errorbar(x, g[metric], yerr=_err(g[metric], g[f"{metric}_ci_low"], g[f"{metric}_ci_high"]),
                        marker="o", ms=3, lw=1, capsize=2, color=f"C{k}", label=task)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(0, 1)
        ax.set_xlabel("step's largest attention weight (bin middle)", fontsize=7)
        ax.set_ylabel(label, fontsize=7)
    if len(t):
        axes[0].legend(fontsize=6)
    fig.tight_layout()
    return fig
