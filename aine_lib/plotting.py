"""Figures: ``f(df, ax=None) -> Figure``. They draw tidy DataFrames; they never compute or save.

Importing this module selects the non-interactive Agg backend and a fixed
style (font, sizes, DPI) so a rebuild produces the same bytes.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "figure.dpi": 120,
    "savefig.dpi": 120,
    "svg.hashsalt": "aine",
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def apply_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind")
    plt.rcParams.update(STYLE)


def _show_figures_in_notebooks() -> None:
    """With the Agg backend a notebook would print ``<Figure ...>``: register a PNG formatter instead."""
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # pragma: no cover - IPython is a dependency of the notebooks only
        return
    if get_ipython() is not None:
        set_matplotlib_formats("png")


apply_style()
_show_figures_in_notebooks()


def length_histograms(lengths: pd.DataFrame, bins: int = 30, quantile_clip: float = 0.99) -> plt.Figure:
    """One panel per data set: token-length histogram per split, x clipped at a high quantile.

    ``lengths`` is tidy: columns dataset, split, length.
    """
    missing = {"dataset", "split", "length"} - set(lengths.columns)
    if missing:
        raise ValueError(f"length_histograms needs columns {sorted(missing)}")
    datasets = list(dict.fromkeys(lengths["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.0 * len(datasets), 2.6), squeeze=False)
    for ax, name in zip(axes[0], datasets):
        sub = lengths[lengths["dataset"] == name]
        hi = float(np.quantile(sub["length"], quantile_clip))
        step = max(1, int(np.ceil(hi / bins)))  # integer-aligned bins: lengths are counts
        edges = np.arange(0, hi + 2 * step, step) - 0.5
        sns.histplot(data=sub, x=sub["length"].clip(upper=hi), hue="split", bins=edges, stat="density",
                     common_norm=False, element="step", fill=False, ax=ax)
        med = float(sub["length"].median())
        ax.axvline(med, color="0.3", lw=0.8, ls="--")
        ax.set_title(f"{name} (median {med:.0f})")
        ax.set_xlabel(f"tokens per example (clipped at p{int(quantile_clip * 100)})")
        ax.set_ylabel("density" if ax is axes[0][0] else "")
    fig.tight_layout()
    return fig


def _err(value, low, high) -> list[np.ndarray]:
    """Error-bar arms ``[value - low, high - value]``, clipped at 0: a bootstrap CI and a mean computed by
    different sums can disagree in the last bit, and matplotlib refuses a negative arm."""
    value, low, high = (np.atleast_1d(np.asarray(x, dtype=float)) for x in (value, low, high))
    return [np.clip(value - low, 0.0, None), np.clip(high - value, 0.0, None)]


def _facet(n: int, width: float = 3.2, height: float = 2.6, ncols: int | None = None):
    ncols = ncols or n
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def _with_model_column(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with ``model`` = "encoder / attention", the label every per-model plot uses."""
    return df.assign(model=df["encoder"] + " / " + df["attention"])


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


# ----- Transformer explanations (notebooks 08-10) ---------------------------------------------

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


# ----- encoder-decoder (notebooks 11-13) ---------------------------------------------------------

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


# ----- internals (notebooks 16-17) -------------------------------------------------------------------

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
    """Drop in log p(generated token) when each head is ablated, per task; one panel per task."""
    groups = list(table.groupby("task", sort=False))
    panels = max(len(groups), 1)                  # one blank panel when no model generated a token
    fig, axes = plt.subplots(panels, 1, figsize=(7.5, 2.0 * panels), squeeze=False)
    if not groups:
        axes[0, 0].set_axis_off()
        axes[0, 0].text(0.5, 0.5, "no model generated a token", ha="center", va="center")
    for ax, (task, g) in zip(axes[:, 0], groups):
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


# ----- scaling (notebook 14) ---------------------------------------------------------------------------

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


def evidence_coverage(evidence: pd.DataFrame) -> plt.Figure:
    """Notebook 15: per question, how many pieces of evidence this run measured and how many are pending."""
    counts = (evidence.assign(state=np.where(evidence["pending"], "pending", "measured"))
              .groupby(["question_number", "question", "state"]).size().unstack(fill_value=0)
              .reindex(columns=["measured", "pending"], fill_value=0))
    labels = [f"{n}. {q}" for n, q in counts.index]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(labels) + 1.2))
    y = np.arange(len(labels))
    ax.barh(y, counts["measured"], color="C0", label="measured in this run")
    ax.barh(y, counts["pending"], left=counts["measured"], color="lightgrey", label="notebook not run yet")
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("pieces of evidence")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
