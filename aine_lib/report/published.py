"""Numbers published by the anchor papers, with where each comes from (see ``docs/published_numbers.md``).

Only values that were read from a source are here; nothing is from memory.
Notebooks put them next to our measurements; they are never used to tune anything.
"""

from __future__ import annotations

import pandas as pd

#: Jain & Wallace 2019, BiLSTM test accuracy, from ``successar/AttentionExplanation``
#: ``graph_outputs/evaluate/*.json`` (HEAD 425a89a). "additive" is their tanh attention.
JW_ACCURACY = {
    ("sst", "lstm", "additive"): 0.808, ("sst", "lstm", "dot"): 0.823,
    ("newsgroups", "lstm", "additive"): 0.922, ("newsgroups", "lstm", "dot"): 0.936,
}

#: Jain & Wallace 2019, Kendall tau mean (sd) per predicted class 0 / 1 and share with p <= 0.05,
#: tanh attention, from ``graph_outputs/GradientPval`` and ``pyxc-pyc_pval`` at commit cbde5d5.
JW_TAU = {
    # (dataset, encoder, comparison): ((mean, sd, share) class 0, (mean, sd, share) class 1)
    ("sst", "lstm", "attention~gradient"): ((0.395, 0.210, 0.59), (0.385, 0.192, 0.58)),
    ("sst", "lstm", "attention~loo"): ((0.336, 0.198, 0.47), (0.334, 0.186, 0.47)),
    ("sst", "cnn", "attention~gradient"): ((0.452, 0.187, 0.71), (0.499, 0.166, 0.79)),
    ("sst", "cnn", "attention~loo"): ((0.362, 0.184, 0.53), (0.384, 0.167, 0.58)),
    ("sst", "average", "attention~gradient"): ((0.692, 0.151, 0.93), (0.691, 0.143, 0.94)),
    ("sst", "average", "attention~loo"): ((0.666, 0.136, 0.92), (0.694, 0.131, 0.94)),
    ("newsgroups", "lstm", "attention~gradient"): ((0.081, 0.153, 0.31), (0.131, 0.156, 0.48)),
    ("newsgroups", "lstm", "attention~loo"): ((0.047, 0.147, 0.28), (0.142, 0.144, 0.51)),
    ("newsgroups", "cnn", "attention~gradient"): ((0.431, 0.170, 0.90), (0.314, 0.123, 0.89)),
    ("newsgroups", "cnn", "attention~loo"): ((0.415, 0.159, 0.88), (0.310, 0.132, 0.87)),
    ("newsgroups", "average", "attention~gradient"): ((0.654, 0.095, 0.99), (0.655, 0.093, 1.00)),
    ("newsgroups", "average", "attention~loo"): ((0.780, 0.108, 0.99), (0.772, 0.106, 1.00)),
}


def jw_accuracy_comparison(summary: pd.DataFrame) -> pd.DataFrame:
    """Our test accuracy (mean, sd over seeds) next to J&W's single published run, where they report one."""
    rows = []
    for (dataset, encoder, attention), published in JW_ACCURACY.items():
        ours = summary[(summary["dataset"] == dataset) & (summary["encoder"] == encoder)
                       & (summary["attention"] == attention)]
        if ours.empty:
            continue
        r = ours.iloc[0]
        rows.append({"dataset": dataset, "encoder": encoder, "attention": attention,
                     "ours_mean": r["test_accuracy_mean"], "ours_sd": r["test_accuracy_std"],
                     "ours_seeds": int(r["test_accuracy_count"]), "jain_wallace": published,
                     "difference": r["test_accuracy_mean"] - published})
    return pd.DataFrame(rows)


def jw_tau_comparison(by_class: pd.DataFrame) -> pd.DataFrame:
    """Our tau (per predicted class, additive attention) next to J&W's (tanh attention)."""
    rows = []
    for (dataset, encoder, comparison), classes in JW_TAU.items():
        for cls, (mean, sd, share) in enumerate(classes):
            ours = by_class[(by_class["dataset"] == dataset) & (by_class["encoder"] == encoder)
                            & (by_class["attention"] == "additive") & (by_class["comparison"] == comparison)
                            & (by_class["predicted"] == cls)]
            if ours.empty:
                continue
            r = ours.iloc[0]
            rows.append({"dataset": dataset, "encoder": encoder, "comparison": comparison, "predicted": cls,
                         "ours_tau_mean": r["tau_mean"], "ours_tau_std": r["tau_std"], "ours_frac_sig": r["frac_sig"],
                         "jw_tau_mean": mean, "jw_tau_std": sd, "jw_frac_sig": share, "n": int(r["n"])})
    return pd.DataFrame(rows)
