"""Transformer-explanation figures (notebooks 08-10).

``f(df) -> Figure``: they draw tidy DataFrames; they never compute or save.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from aine_lib.report.plots.style import _err, _facet

#: A heat-map row whose largest |score| is below this is drawn as zeros: scaling it by its own maximum would
#: paint floating-point noise (a leave-one-out of 1e-9 when the prediction does not move) in full colour.
NEGLIGIBLE_SCORE = 1e-6


def attribution_heatmaps(examples: list[dict], methods: list[str]) -> plt.Figure:
    """One panel per example: rows = methods, columns = tokens; each row scaled by its max |score|.

    Each row's label ends with that maximum, so rows of very different size can be told apart; a row whose
    maximum is below :data:`NEGLIGIBLE_SCORE` is drawn white and labelled "all ~ 0". ``examples[i]`` has
    ``tokens`` (list of str), ``scores`` ({method: array}), ``title`` and optionally ``rationale`` (0/1 per
    token, drawn as an extra row).
    """
    n = len(examples)
    widths = [max(len(e["tokens"]), 4) for e in examples]
    fig, axes = plt.subplots(n, 1, figsize=(min(16, 0.42 * max(widths) + 2.5), 0.28 * (len(methods) + 2) * n + 0.6),
                             squeeze=False)
    cmap = sns.color_palette("vlag", as_cmap=True)
    for ax, ex in zip(axes[:, 0], examples):
        rows, labels = [], []
        for method in methods:
            s = np.asarray(ex["scores"][method], dtype=float)
            m = float(np.abs(s).max()) if s.size else 0.0
            if m < NEGLIGIBLE_SCORE:
                rows.append(np.zeros_like(s))
                labels.append(f"{method} (all ~ 0)")
            else:
                rows.append(s / m)
                labels.append(f"{method} (max {m:.2g})")
        if ex.get("rationale") is not None:
            rows.append(np.asarray(ex["rationale"], dtype=float))
            labels.append("TRUE rationale")
        ax.imshow(np.vstack(rows), cmap=cmap, vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
        ax.set_xticks(range(len(ex["tokens"])), ex["tokens"], fontsize=6, rotation=60, ha="right")
        ax.set_title(ex["title"], fontsize=8, loc="left")
        ax.grid(False)
    fig.tight_layout()
    return fig


def faithfulness_points(table: pd.DataFrame) -> plt.Figure:
    """AOPC comprehensiveness (higher = more faithful) vs AOPC sufficiency (lower = more faithful) per method.

    One panel per data set x model; marker per deletion mode; error bars are bootstrap CIs.
    """
    t = table[table["metric"].isin(["aopc_comprehensiveness", "aopc_sufficiency"])]
    panels = list(dict.fromkeys(zip(t["dataset"], t["model"])))
    fig, axes = _facet(len(panels), width=4.4, height=3.6, ncols=min(3, len(panels)))
    markers = {"remove": "o", "mask": "s", "attention_mask": "^"}
    methods = list(dict.fromkeys(t["method"]))
    colors = dict(zip(methods, sns.color_palette("tab20", len(methods))))
    for ax, (dataset, model) in zip(axes, panels):
        sub = t[(t["dataset"] == dataset) & (t["model"] == model)]
        for (method, mode), g in sub.groupby(["method", "mode"], sort=False):
            c = g[g["metric"] == "aopc_comprehensiveness"].iloc[0]
            s = g[g["metric"] == "aopc_sufficiency"].iloc[0]
            ax.errorbar(s["value"], c["value"], xerr=_err(s["value"], s["ci_low"], s["ci_high"]),
                        yerr=_err(c["value"], c["ci_low"], c["ci_high"]), fmt=markers.get(mode, "o"),
                        color=colors[method], ms=4, lw=0.6, capsize=1.5,
                        label=method if mode == sub["mode"].iloc[0] else None)
        ax.set_title(f"{dataset} · {model}")
        ax.set_xlabel("AOPC sufficiency (lower is better)")
        ax.set_ylabel("AOPC comprehensiveness (higher is better)" if ax is axes[0] else "")
    handles, labels = axes[0].get_legend_handles_labels()
    mode_handles = [plt.Line2D([], [], marker=mk, ls="", color="0.3", label=md) for md, mk in markers.items()]
    fig.legend(handles + mode_handles, labels + list(markers), fontsize=6, loc="center left",
               bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def comprehensiveness_curves(per_instance: pd.DataFrame, mode: str = "mask") -> plt.Figure:
    """Mean comprehensiveness by erased fraction, one line per method (ERASER's perturbation curve)."""
    df = per_instance[per_instance["mode"] == mode]
    panels = list(dict.fromkeys(zip(df["dataset"], df["model"])))
    fig, axes = _facet(len(panels), width=4.0, height=3.0, ncols=min(3, len(panels)))
    for ax, (dataset, model) in zip(axes, panels):
        sub = df[(df["dataset"] == dataset) & (df["model"] == model)]
        curves = sub.groupby(["method", "fraction"], sort=False)["comprehensiveness"].mean().reset_index()
        sns.lineplot(data=curves, x="fraction", y="comprehensiveness", hue="method", marker="o", ms=3, lw=0.9,
                     ax=ax, legend=ax is axes[0], palette="tab20")
        ax.set_xscale("log")
        ax.set_title(f"{dataset} · {model} ({mode})")
    if axes[0].get_legend() is not None:
        axes[0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def layer_head_heatmap(agreement: pd.DataFrame) -> plt.Figure:
    """Top-k tau of each layer x head's [CLS] attention with the reference; the random floor in the title."""
    panels = list(dict.fromkeys(zip(agreement["dataset"], agreement["model"], agreement["reference"])))
    fig, axes = _facet(len(panels), width=4.2, height=3.0, ncols=min(2, len(panels)))
    for ax, (dataset, model, reference) in zip(axes, panels):
        sub = agreement[(agreement["dataset"] == dataset) & (agreement["model"] == model)
                        & (agreement["reference"] == reference)]
        floor = sub.loc[sub["head"] == "random", "tau_top_k"]
        grid = sub[sub["head"] != "random"].pivot(index="layer", columns="head", values="tau_top_k")
        cols = sorted([c for c in grid.columns if c != "mean"], key=int) + (["mean"] if "mean" in grid.columns else [])
        sns.heatmap(grid[cols], annot=grid[cols].shape[1] <= 13, fmt=".2f", annot_kws={"fontsize": 5},
                    cmap="viridis", ax=ax, cbar_kws={"shrink": 0.7})
        floor_text = f", random floor {float(floor.iloc[0]):.2f}" if len(floor) else ""
        ax.set_title(f"{dataset} · {model}: top-k τ with {reference}{floor_text}", fontsize=8)
    fig.tight_layout()
    return fig


def agreement_matrix(matrix: pd.DataFrame) -> plt.Figure:
    """Heat map of the mean Kendall tau between every pair of methods (one panel per data set x model)."""
    panels = list(dict.fromkeys(zip(matrix["dataset"], matrix["model"])))
    fig, axes = _facet(len(panels), width=5.2, height=4.6, ncols=min(2, len(panels)))
    for ax, (dataset, model) in zip(axes, panels):
        sub = matrix[(matrix["dataset"] == dataset) & (matrix["model"] == model)]
        order = list(dict.fromkeys(sub["method_a"]))
        grid = sub.pivot(index="method_a", columns="method_b", values="tau").loc[order, order]
        sns.heatmap(grid, cmap="vlag", vmin=-1, vmax=1, annot=True, fmt=".2f", annot_kws={"fontsize": 4.5},
                    ax=ax, cbar_kws={"shrink": 0.7})
        ax.set_title(f"{dataset} · {model}: mean Kendall τ", fontsize=8)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    return fig


def plausibility_points(table: pd.DataFrame) -> plt.Figure:
    """AUPRC against the planted rationale per method (mean, bootstrap CI), sorted."""
    panels = list(dict.fromkeys(zip(table["dataset"], table["model"])))
    fig, axes = _facet(len(panels), width=4.6, height=3.4)
    for ax, (dataset, model) in zip(axes, panels):
        sub = table[(table["dataset"] == dataset) & (table["model"] == model)].sort_values("auprc")
        y = np.arange(len(sub))
        ax.errorbar(sub["auprc"], y, xerr=_err(sub["auprc"], sub["ci_low"], sub["ci_high"]), fmt="o",
                    ms=3, capsize=2)
        ax.set_yticks(y, sub["method"], fontsize=6)
        ax.set_xlabel("AUPRC vs the planted rationale")
        ax.set_title(f"{dataset} · {model}")
    fig.tight_layout()
    return fig
