"""Published numbers are placed next to ours by key, never mixed up."""

import pandas as pd

from aine_lib.report.published import JW_ACCURACY, jw_accuracy_comparison, jw_tau_comparison


def test_accuracy_comparison_matches_rows_by_dataset_encoder_attention():
    summary = pd.DataFrame([
        {"dataset": "sst", "encoder": "lstm", "attention": "dot", "test_accuracy_mean": 0.8, "test_accuracy_std": 0.01,
         "test_accuracy_count": 3},
        {"dataset": "sst", "encoder": "cnn", "attention": "dot", "test_accuracy_mean": 0.5, "test_accuracy_std": 0.0,
         "test_accuracy_count": 3},
    ])
    out = jw_accuracy_comparison(summary)
    assert len(out) == 1
    row = out.iloc[0]
    assert row["jain_wallace"] == JW_ACCURACY[("sst", "lstm", "dot")]
    assert abs(row["difference"] - (0.8 - JW_ACCURACY[("sst", "lstm", "dot")])) < 1e-12


def test_tau_comparison_uses_additive_attention_and_the_predicted_class():
    by_class = pd.DataFrame([
        {"dataset": "sst", "encoder": "lstm", "attention": a, "comparison": "attention~loo", "predicted": c,
         "tau_mean": 0.1 * (c + 1) + (0.5 if a == "dot" else 0), "tau_std": 0.2, "frac_sig": 0.3, "n": 10}
        for a in ("additive", "dot") for c in (0, 1)])
    out = jw_tau_comparison(by_class)
    assert out["ours_tau_mean"].round(6).tolist() == [0.1, 0.2]
    assert out["jw_tau_mean"].tolist() == [0.336, 0.334]
