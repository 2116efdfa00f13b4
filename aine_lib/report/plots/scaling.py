"""Scaling figures (notebook 14).

``f(df) -> Figure``: they draw tidy DataFrames; they never compute or save.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd

#: the attention method drawn for each family in the scaling curves
SCALING_ATTENTION = {"average": "attention", "cnn": "attention", "lstm": "attention", "scratch": "attention_cls_last",
                     "minilm": "attention_cls_last"}


def _scaling_series(table: pd.DataFrame, metric: str, family: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    t = table[(table["family"] == family) & (table["metric"] == metric)]
    if metric == "accuracy":
        return t.sort_values("fraction"), t.iloc[0:0]
    attention = t[t["method"] == SCALING_ATTENTION.get(family, "attention")].sort_values("fraction")
    best = t[t["best_other"]].sort_values("fraction")
    return attention, best


def scaling_curves(table: pd.DataFrame, metrics: tuple[str, ...] = ("accuracy", "tau_loo_length_std",
                                                                   "aopc_comprehensiveness")) -> plt.Figure:
    """Rows: metrics; columns: data sets; x: share of the training data (log). Solid: the family's attention
    (accuracy: the model); dashed: the best non-attention method at that point. Bands: bootstrap CIs."""
    datasets = list(dict.fromkeys(table["dataset"]))
    families = list(dict.fromkeys(table["family"]))
    fig, axes = plt.subplots(len(metrics), len(datasets), figsize=(3.8 * len(datasets), 2.6 * len(metrics)),
                             squeeze=False)
    for j, dataset in enumerate(datasets):
        d = table[table["dataset"] == dataset]
        for i, metric in enumerate(metrics):
            ax = axes[i, j]
            for k, family in enumerate(families):
                attention, best = _scaling_series(d, metric, family)
                color = f"C{k}"
                if len(attention):
                    ax.plot(attention["fraction"], attention["value"], marker="o", ms=3, color=color, label=family)
                    ax.fill_between(attention["fraction"], attention["ci_low"], attention["ci_high"], color=color,
                                    alpha=0.15)
                if len(best):
                    ax.plot(best["fraction"], best["value"], ls="--", marker="x", ms=3, color=color, lw=0.9)
            ax.set_xscale("log")
            fractions = sorted(d["fraction"].unique())
            ax.set_xticks(fractions, [f"{f:.0%}" for f in fractions])
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_title(f"{dataset}: {metric.replace('_', ' ')}", fontsize=8)
            if i == len(metrics) - 1:
                ax.set_xlabel("share of the training data")
    axes[0, 0].legend(fontsize=6, title="solid: attention / model\ndashed: best other method", title_fontsize=6)
    fig.tight_layout()
    return fig


def model_size_curves(table: pd.DataFrame, metrics: tuple[str, ...] = ("accuracy", "tau_loo_length_std",
                                                                      "aopc_comprehensiveness")) -> plt.Figure:
    """The scratch Transformer's depth x width grid: x = width, one line per depth; dashed = best other."""
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(len(metrics), len(datasets), figsize=(3.8 * len(datasets), 2.6 * len(metrics)),
                             squeeze=False)
    for j, dataset in enumerate(datasets):
        d = table[table["dataset"] == dataset]
        for i, metric in enumerate(metrics):
            ax = axes[i, j]
            for k, (layers, g) in enumerate(d.groupby("layers", sort=True)):
                m = g[g["metric"] == metric]
                line = m if metric == "accuracy" else m[m["method"] == SCALING_ATTENTION["scratch"]]
                line = line.sort_values("hidden")
                ax.plot(line["hidden"], line["value"], marker="o", ms=3, color=f"C{k}", label=f"{int(layers)} layers")
                ax.fill_between(line["hidden"], line["ci_low"], line["ci_high"], color=f"C{k}", alpha=0.15)
                if metric != "accuracy":
                    best = m[m["best_other"]].sort_values("hidden")
                    ax.plot(best["hidden"], best["value"], ls="--", marker="x", ms=3, color=f"C{k}", lw=0.9)
            ax.set_xscale("log", base=2)
            widths = sorted(d["hidden"].dropna().unique())
            ax.set_xticks(widths, [str(int(w)) for w in widths])
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_title(f"{dataset}: {metric.replace('_', ' ')}", fontsize=8)
            if i == len(metrics) - 1:
                ax.set_xlabel("width (hidden size)")
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    return fig
