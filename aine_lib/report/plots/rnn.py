"""RNN-study figures: Jain & Wallace, Wiegreffe & Pinter, Serrano & Smith (notebooks 01-07).

``f(df) -> Figure``: they draw tidy DataFrames; they never compute or save.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from aine_lib.report.plots.style import _err, _facet, _with_model_column


def performance_points(summary: pd.DataFrame, metric: str = "test_f1") -> plt.Figure:
    """Mean over seeds with +-1 std error bars, one panel per data set, one point per encoder x attention."""
    datasets = list(dict.fromkeys(summary["dataset"]))
    fig, axes = _facet(len(datasets))
    for ax, name in zip(axes, datasets):
        sub = summary[summary["dataset"] == name].reset_index(drop=True)
        labels = [f"{e}\n{a}" for e, a in zip(sub["encoder"], sub["attention"])]
        ax.errorbar(range(len(sub)), sub[f"{metric}_mean"], yerr=sub[f"{metric}_std"].fillna(0),
                    fmt="o", capsize=3)
        ax.set_xticks(range(len(sub)), labels, fontsize=7)
        ax.set_title(name)
        ax.set_ylabel(f"{metric} (mean ± sd over seeds)" if ax is axes[0] else "")
    fig.tight_layout()
    return fig


def tau_histograms(per_instance: pd.DataFrame, comparison: str, column: str = "tau",
                   label_names: dict[str, tuple[str, ...]] | None = None) -> plt.Figure:
    """J&W Fig. 2: histogram of Kendall tau per instance, colored by predicted class; rows data sets, columns models."""
    sub = _with_model_column(per_instance[per_instance["comparison"] == comparison])
    if sub.empty:
        raise ValueError(f"no rows for comparison {comparison!r}")
    datasets = list(dict.fromkeys(sub["dataset"]))
    models = list(dict.fromkeys(sub["model"]))
    fig, axes = plt.subplots(len(datasets), len(models), figsize=(2.4 * len(models), 1.9 * len(datasets)),
                             squeeze=False, sharex=True)
    edges = np.linspace(-1, 1, 21)
    for i, name in enumerate(datasets):
        for j, model in enumerate(models):
            ax = axes[i][j]
            cell = sub[(sub["dataset"] == name) & (sub["model"] == model)]
            for cls, g in cell.groupby("predicted"):
                label = label_names[name][cls] if label_names else f"class {cls}"
                ax.hist(g[column].dropna(), bins=edges, alpha=0.55, label=label)
            ax.axvline(0, color="0.3", lw=0.6)
            if i == 0:
                ax.set_title(model, fontsize=8)
            if j == 0:
                ax.set_ylabel(name)
            if i == len(datasets) - 1:
                ax.set_xlabel(column.replace("_", " "))
    axes[0][-1].legend(fontsize=6, title="predicted", title_fontsize=6)
    fig.suptitle(f"Kendall {column.replace('_', ' ')}: {comparison}", y=1.0)
    fig.tight_layout()
    return fig


def difference_densities(differences: pd.DataFrame) -> plt.Figure:
    """J&W Fig. 3: density of tau(gradient, LOO) - tau(attention, LOO) per instance, per data set and model."""
    datasets = list(dict.fromkeys(differences["dataset"]))
    fig, axes = _facet(len(datasets))
    for ax, name in zip(axes, datasets):
        sub = _with_model_column(differences[differences["dataset"] == name])
        sns.kdeplot(data=sub, x="difference", hue="model", common_norm=False, ax=ax, warn_singular=False,
                    legend=ax is axes[0])
        ax.axvline(0, color="0.3", lw=0.6)
        ax.set_title(name)
        ax.set_xlabel("tau(grad, LOO) - tau(attn, LOO)")
    fig.tight_layout()
    return fig


def permutation_violins(per_instance: pd.DataFrame) -> plt.Figure:
    """J&W Figs. 5-6: median output change under permuted attention, by max-attention bin.

    Columns are data sets, rows attention types, colours encoders (one violin per model and bin).
    """
    datasets = list(dict.fromkeys(per_instance["dataset"]))
    attentions = list(dict.fromkeys(per_instance["attention"]))
    order = sorted(per_instance["max_attention_bin"].unique())
    fig, axes = plt.subplots(len(attentions), len(datasets), figsize=(4.0 * len(datasets), 2.6 * len(attentions)),
                             squeeze=False)
    for i, attention in enumerate(attentions):
        for j, name in enumerate(datasets):
            ax = axes[i][j]
            sub = per_instance[(per_instance["dataset"] == name) & (per_instance["attention"] == attention)]
            sns.violinplot(data=sub, x="max_attention_bin", y="median_output_change", hue="encoder", order=order,
                           cut=0, density_norm="width", linewidth=0.5, ax=ax, legend=(i == 0 and j == 0))
            ax.set_title(f"{name}, {attention} attention")
            ax.set_xlabel("max attention" if i == len(attentions) - 1 else "")
            ax.set_ylabel("median output change (TVD)" if j == 0 else "")
            ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return fig


def adversarial_scatter(per_instance: pd.DataFrame) -> plt.Figure:
    """J&W Figs. 8-9: max JSD of an epsilon-adversarial attention vs the instance's max attention."""
    datasets = list(dict.fromkeys(per_instance["dataset"]))
    fig, axes = _facet(len(datasets))
    for ax, name in zip(axes, datasets):
        sub = _with_model_column(per_instance[per_instance["dataset"] == name])
        sns.scatterplot(data=sub, x="max_attention", y="max_jsd", hue="model", s=6, alpha=0.5, linewidth=0,
                        ax=ax, legend=ax is axes[0])
        ax.axhline(np.log(2), color="0.3", lw=0.6, ls="--")
        ax.set_ylim(-0.02, 0.72)
        ax.set_xlim(0, 1)
        ax.set_title(name)
        ax.set_ylabel("max JSD (ln 2 dashed)" if ax is axes[0] else "")
    if axes and axes[0].get_legend() is not None:
        axes[0].legend(fontsize=6, markerscale=2)
    fig.tight_layout()
    return fig


# ----- Wiegreffe & Pinter, Serrano & Smith (notebooks 05-07) ---------------------------

def uniform_baseline_points(table: pd.DataFrame) -> plt.Figure:
    """W&P Table 2 as a figure: test F1 (mean ± sd over seeds) of trained and uniform attention per encoder."""
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = _facet(len(datasets))
    attentions = list(dict.fromkeys(table["attention"]))
    for ax, name in zip(axes, datasets):
        sub = table[table["dataset"] == name]
        encoders = list(dict.fromkeys(sub["encoder"]))
        width = 0.8 / len(attentions)
        for i, attention in enumerate(attentions):
            rows = sub[sub["attention"] == attention].set_index("encoder").reindex(encoders)
            x = np.arange(len(encoders)) + (i - (len(attentions) - 1) / 2) * width
            ax.errorbar(x, rows["test_f1_mean"], yerr=rows["test_f1_std"].fillna(0), fmt="o", capsize=3,
                        label=attention, color="0.35" if attention == "uniform" else None)
        ax.set_xticks(range(len(encoders)), encoders)
        ax.set_title(name)
        ax.set_ylabel("test macro-F1 (mean ± sd)" if ax is axes[0] else "")
    axes[0].legend(fontsize=7, title="attention", title_fontsize=7)
    fig.tight_layout()
    return fig


def jsd_densities(samples: pd.DataFrame) -> plt.Figure:
    """W&P Fig. 3 idea: per data set, densities of per-instance JSD from the base attention, one line per source.

    ``samples`` is tidy: columns dataset, encoder, attention, source (e.g.
    "other seeds", "J&W adversary"), jsd. One line per model and source.
    """
    samples = _with_model_column(samples)
    datasets = list(dict.fromkeys(samples["dataset"]))
    fig, axes = _facet(len(datasets))
    edges = np.linspace(0, np.log(2), 36)
    several_models = samples["model"].nunique() > 1
    for ax, name in zip(axes, datasets):
        sub = samples[samples["dataset"] == name]
        for (model, source), g in sub.groupby(["model", "source"], sort=False):
            label = f"{model}: {source}" if several_models else source
            ax.hist(g["jsd"], bins=edges, density=True, histtype="step", lw=1.2,
                    label=f"{label} (median {g['jsd'].median():.3f})")
        ax.axvline(np.log(2), color="0.3", lw=0.6, ls="--")
        ax.set_title(name)
        ax.set_xlabel("JSD to the base model's attention (nats)")
        ax.set_ylabel("density" if ax is axes[0] else "")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def tradeoff_curves(table: pd.DataFrame) -> plt.Figure:
    """W&P Fig. 4: mean TVD to the base predictions vs mean JSD to its attention; adversaries by lambda, seeds as x."""
    table = _with_model_column(table)
    datasets = list(dict.fromkeys(table["dataset"]))
    several_models = table["model"].nunique() > 1
    fig, axes = _facet(len(datasets))
    for ax, name in zip(axes, datasets):
        for model, sub in table[table["dataset"] == name].groupby("model", sort=False):
            adv = sub[sub["kind"] == "adversary"].sort_values("adversary_lambda")
            seeds = sub[sub["kind"] == "seed"]
            for kind, rows, style in (("adversary", adv, "o-"), ("other seeds", seeds, "x")):
                xerr = _err(rows["jsd_mean"], rows["jsd_ci_low"], rows["jsd_ci_high"])
                yerr = _err(rows["tvd_mean"], rows["tvd_ci_low"], rows["tvd_ci_high"])
                ax.errorbar(rows["jsd_mean"], rows["tvd_mean"], xerr=xerr, yerr=yerr, fmt=style, capsize=2, ms=4,
                            lw=0.9, label=f"{model}: {kind}" if several_models else kind)
            for _, row in adv.iterrows():
                ax.annotate(f"λ={row['adversary_lambda']:g}", (row["jsd_mean"], row["tvd_mean"]), fontsize=6,
                            textcoords="offset points", xytext=(3, 3))
        ax.set_xlim(0, np.log(2) * 1.02)
        ax.set_title(name)
        ax.set_xlabel("mean JSD to base attention (nats)")
        ax.set_ylabel("mean TVD to base output" if ax is axes[0] else "")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def diagnostic_points(table: pd.DataFrame) -> plt.Figure:
    """W&P Table 3 as a figure: test F1 of the context-free model per attention guide."""
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = _facet(len(datasets))
    for ax, name in zip(axes, datasets):
        sub = table[table["dataset"] == name].reset_index(drop=True)
        labels = [g if m == "-" else f"{g}\n{m}" for g, m in zip(sub["guide"], sub["guide_model"])]
        ax.errorbar(range(len(sub)), sub["test_f1_mean"], yerr=sub["test_f1_std"].fillna(0), fmt="o", capsize=3)
        ax.set_xticks(range(len(sub)), labels, fontsize=6)
        ax.set_title(name)
        ax.set_ylabel("test macro-F1 of the Average model" if ax is axes[0] else "")
    fig.tight_layout()
    return fig


def single_erasure_scatter(per_instance: pd.DataFrame) -> plt.Figure:
    """S&S Fig. 2: JSD(top erased) - JSD(random erased) vs attention(top) - attention(random), per data set."""
    df = _with_model_column(per_instance[per_instance["n"] > 1])
    df = df.assign(weight_difference=df["weight_top"] - df["weight_random"],
                   jsd_difference=df["jsd_top"] - df["jsd_random"])
    datasets = list(dict.fromkeys(df["dataset"]))
    fig, axes = _facet(len(datasets))
    for ax, name in zip(axes, datasets):
        sub = df[df["dataset"] == name]
        sns.scatterplot(data=sub, x="weight_difference", y="jsd_difference", hue="model", s=5, alpha=0.4,
                        linewidth=0, ax=ax, legend=ax is axes[0])
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_xlim(0, 1)
        ax.set_title(name)
        ax.set_xlabel("attention(i*) − attention(r)")
        ax.set_ylabel("ΔJSD(i*) − ΔJSD(r) of the output" if ax is axes[0] else "")
    if axes[0].get_legend() is not None:
        axes[0].legend(fontsize=6, markerscale=2)
    fig.tight_layout()
    return fig


def erasure_boxplots(per_instance: pd.DataFrame) -> plt.Figure:
    """S&S Fig. 5: fraction of attention items erased before the decision flips, per order and model."""
    df = _with_model_column(per_instance[(per_instance["n"] > 1) & per_instance["flipped"].astype(bool)])
    datasets = list(dict.fromkeys(df["dataset"]))
    fig, axes = _facet(len(datasets), width=4.2, ncols=2)
    order_names = list(dict.fromkeys(per_instance["order"]))
    for ax, name in zip(axes, datasets):
        sub = df[df["dataset"] == name]
        sns.boxplot(data=sub, x="model", y="fraction", hue="order", hue_order=order_names, fliersize=0.5,
                    linewidth=0.6, ax=ax, legend=ax is axes[0])
        ax.set_ylim(0, 1)
        ax.set_title(name)
        ax.set_xlabel("")
        ax.tick_params(axis="x", labelsize=6, rotation=20)
        ax.set_ylabel("fraction erased until the decision flips" if ax is axes[0] else "")
    top = 1.0
    if axes[0].get_legend() is not None:   # one legend above the panels, clear of the titles
        handles, labels = axes[0].get_legend_handles_labels()
        axes[0].get_legend().remove()
        fig.legend(handles, labels, fontsize=7, title="order", title_fontsize=7, ncol=len(labels),
                   loc="upper center", frameon=False)
        top = 1.0 - 0.5 / fig.get_figheight()
    fig.tight_layout(rect=(0, 0, 1, top))
    return fig
