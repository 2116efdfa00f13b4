"""Model-internals and explanation-ensemble figures (notebooks 16-17).

``f(df) -> Figure``: they draw tidy DataFrames; they never compute or save.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from aine_lib.report.plots.style import _err


def head_importance_scatter(table: pd.DataFrame) -> plt.Figure:
    """Per model: each head's ablation effect (drop in p(prediction)) against its [CLS] attention entropy;
    marker size = how often it is the head that agrees best with leave-one-out."""
    groups = list(table.groupby(["dataset", "model"], sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups), 3.2), squeeze=False)
    for ax, ((dataset, model), g) in zip(axes[0], groups):
        sizes = 15 + 400 * g["explanation_share"].fillna(0)
        sc = ax.scatter(g["cls_entropy"], g["prob_drop"], s=sizes, c=g["layer"], cmap="viridis", alpha=0.8,
                        edgecolors="black", linewidths=0.3)
        ax.errorbar(g["cls_entropy"], g["prob_drop"],
                    yerr=_err(g["prob_drop"], g["prob_drop_ci_low"], g["prob_drop_ci_high"]),
                    fmt="none", ecolor="grey", lw=0.5)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xlabel("[CLS] attention entropy (normalised)")
        ax.set_ylabel("drop in p(prediction) when ablated")
        ax.set_title(f"{dataset} / {model}", fontsize=8)
        fig.colorbar(sc, ax=ax, label="layer")
    fig.tight_layout()
    return fig


def pruning_curves(table: pd.DataFrame) -> plt.Figure:
    groups = list(table.groupby(["dataset", "model"], sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(3.4 * len(groups), 3.0), squeeze=False)
    for ax, ((dataset, model), g) in zip(axes[0], groups):
        for order, o in g.groupby("order", sort=False):
            ax.plot(o["fraction_pruned"], o["accuracy"], marker="o", ms=3, label=order.replace("_", " "))
            ax.fill_between(o["fraction_pruned"], o["ci_low"], o["ci_high"], alpha=0.15)
        ax.set_xlabel("share of heads removed")
        ax.set_ylabel("accuracy (analysis rows)")
        ax.set_title(f"{dataset} / {model}", fontsize=8)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def readout_curves(table: pd.DataFrame) -> plt.Figure:
    groups = list(table.groupby(["dataset", "model"], sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(3.4 * len(groups), 3.0), squeeze=False)
    for ax, ((dataset, model), g) in zip(axes[0], groups):
        for readout, r in g.groupby("readout", sort=False):
            label = readout.replace("_", " ")
            draws = int(r["control_draws"].max()) if "control_draws" in r else 0
            if draws > 1:      # its band is the spread over permutations, not a bootstrap CI
                label += f" (mean of {draws}; band: 95 % of draws)"
            ax.plot(r["layer"], r["accuracy"], marker="o", ms=3, label=label)
            ax.fill_between(r["layer"], r["ci_low"], r["ci_high"], alpha=0.15)
        ax.axhline(float(g["chance"].iloc[0]), color="black", ls=":", lw=0.8, label="majority class")
        ax.set_xlabel("layer (0 = embeddings)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("accuracy (analysis rows)")
        ax.set_title(f"{dataset} / {model}", fontsize=8)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def seq2seq_head_bars(table: pd.DataFrame) -> plt.Figure:
    """Drop in log p(generated token) when each head is ablated, per task; one panel per task. With one
    seed the whiskers are the bootstrap CI; with several, the bar is the mean over seeds and the whiskers
    span the seeds' values."""
    groups = list(table.groupby("task", sort=False))
    panels = max(len(groups), 1)                  # one blank panel when no model generated a token
    fig, axes = plt.subplots(panels, 1, figsize=(7.5, 2.0 * panels), squeeze=False)
    if not groups:
        axes[0, 0].set_axis_off()
        axes[0, 0].text(0.5, 0.5, "no model generated a token", ha="center", va="center")
    for ax, (task, g) in zip(axes[:, 0], groups):
        if g["seed"].nunique() > 1:
            g = (g.groupby(["kind", "layer", "head"], sort=False)["logp_drop"]
                 .agg(logp_drop="mean", ci_low="min", ci_high="max").reset_index())
        labels = [f"{k.replace('_self', '')} L{l} H{h}" for k, l, h in zip(g["kind"], g["layer"], g["head"])]
        x = np.arange(len(g))
        colors = {"encoder_self": "C0", "decoder_self": "C1", "cross": "C2"}
        ax.bar(x, g["logp_drop"], color=[colors[k] for k in g["kind"]],
               yerr=_err(g["logp_drop"], g["ci_low"], g["ci_high"]), error_kw={"lw": 0.5})
        ax.set_xticks(x, labels, rotation=90, fontsize=5)
        ax.set_ylabel("Δ log p")
        ax.set_title(task, fontsize=8)
    fig.tight_layout()
    return fig


def ensemble_points(table: pd.DataFrame, metric: str = "aopc_comprehensiveness") -> plt.Figure:
    """Faithfulness of each member and of the ensembles (one panel per data set / model)."""
    t = table[(table["part"] == "explanation_ensemble") & (table["metric"] == metric)]
    groups = list(t.groupby(["dataset", "model"], sort=False))
    fig, axes = plt.subplots(1, max(len(groups), 1), figsize=(3.6 * max(len(groups), 1), 3.2), squeeze=False)
    for ax, ((dataset, model), g) in zip(axes[0], groups):
        g = g.sort_values("value")
        y = np.arange(len(g))
        colors = ["C3" if m.startswith("ensemble") else ("grey" if m == "random" else "C0") for m in g["method"]]
        ax.errorbar(g["value"], y, xerr=_err(g["value"], g["ci_low"], g["ci_high"]), fmt="none",
                    ecolor="grey", lw=0.6)
        ax.scatter(g["value"], y, c=colors, zorder=3, s=18)
        ax.set_yticks(y, g["method"], fontsize=6)
        ax.set_xlabel(metric.replace("_", " "))
        ax.set_title(f"{dataset} / {model}", fontsize=8)
    fig.tight_layout()
    return fig


def stability_bars(table: pd.DataFrame) -> plt.Figure:
    t = table[table["part"] == "seed_stability"]
    groups = list(t.groupby(["dataset", "model"], sort=False))
    fig, axes = plt.subplots(1, max(len(groups), 1), figsize=(3.6 * max(len(groups), 1), 3.0), squeeze=False)
    for ax, ((dataset, model), g) in zip(axes[0], groups):
        g = g.sort_values("value")
        y = np.arange(len(g))
        ax.barh(y, g["value"], xerr=_err(g["value"], g["ci_low"], g["ci_high"]), color="C0",
                error_kw={"lw": 0.6})
        ax.set_yticks(y, g["method"], fontsize=6)
        ax.set_xlabel("Kendall τ between seeds' explanations")
        ax.set_title(f"{dataset} / {model}", fontsize=8)
    fig.tight_layout()
    return fig
