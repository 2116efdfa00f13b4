"""Data-set figures (notebook 00).

``f(df) -> Figure``: they draw tidy DataFrames; they never compute or save.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


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
