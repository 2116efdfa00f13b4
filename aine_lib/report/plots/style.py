"""Shared figure style and helpers: ``apply_style``, error-bar arms, facet grids.

Importing this module selects the non-interactive Agg backend and a fixed
style (font, sizes, DPI) so a rebuild produces the same bytes.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
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
