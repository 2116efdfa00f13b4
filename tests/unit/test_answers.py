"""The landing page's answers are read from the tables, and say "pending" where a table is missing."""

import pandas as pd

from aine_lib.report.findings import answers_markdown


def _tau_rows(att_loo: float, grad_loo: float, encoder: str) -> list[dict]:
    return [{"dataset": "sst", "encoder": encoder, "attention": "additive", "comparison": c, "tau_mean": v,
             "tau_std": 0.1, "tau_ci_low": v - 0.01, "tau_ci_high": v + 0.01, "frac_sig": 0.5,
             "tau_top_k_mean": 0.0, "tau_top_k_std": 0.1, "n": 100}
            for c, v in (("attention~loo", att_loo), ("gradient~loo", grad_loo))]


def test_answers_read_the_numbers_from_the_tables(tmp_path):
    pd.DataFrame(_tau_rows(0.31, 0.57, "lstm") + _tau_rows(0.8, 0.6, "average")).to_csv(tmp_path / "jw_tau.csv",
                                                                                       index=False)
    pd.DataFrame({"dataset": "sst", "encoder": "lstm", "attention": ["additive", "dot"],
                  "max_attention_bin": "0.00-0.25", "output_change_median": [0.2, 0.01], "output_change_q25": 0,
                  "output_change_q75": 0, "n": 10}).to_csv(tmp_path / "permutation.csv", index=False)
    text = answers_markdown(tmp_path, "paper")
    assert "in 1 of 2 dataset × encoder × attention cells" in text
    assert "τ(attention, LOO) 0.31 [0.30, 0.32] vs τ(gradient, LOO) 0.57 [0.56, 0.58]" in text
    assert "additive attention 0.200 (moves the output)" in text
    assert "dot attention 0.010 (barely moves the output)" in text
    assert "`04_adversarial` has not been run" in text and "`13_generation_decisions` has not been run" in text
    assert "smoke" not in text


def test_answers_without_tables_are_all_pending_and_smoke_is_flagged(tmp_path):
    text = answers_markdown(tmp_path / "missing", "smoke")
    assert "show that the pipeline runs, not what is true" in text
    for notebook in ("02_attention_vs_gradients", "03_permutation", "04_adversarial", "05_uniform_and_seeds",
                     "07_erasure", "09_faithfulness", "10_layers_heads", "12_cross_attention_alignment",
                     "13_generation_decisions", "16_internals", "17_explanation_ensembles"):
        assert f"`{notebook}` has not been run" in text
    assert text.count("### ") == 3


def test_answers_read_internals_and_ensembles_from_their_tables(tmp_path):
    pd.DataFrame({"dataset": "sst", "model": "minilm", "head property": ["explanation_share", "cls_entropy"],
                  "spearman_with_prob_drop": [0.12, 0.5], "p_value": [0.31, 0.01], "heads": 72}
                 ).to_csv(tmp_path / "head_importance_correlations.csv", index=False)
    pd.DataFrame({"dataset": "sst", "model": "minilm", "seed": 0,
                  "order": ["least_important_first"] * 3 + ["most_important_first"] * 3,
                  "heads_pruned": [0, 36, 72] * 2, "fraction_pruned": [0, 0.5, 1] * 2,
                  "accuracy": [0.9, 0.88, 0.5, 0.9, 0.61, 0.5], "ci_low": 0, "ci_high": 1, "n": 500}
                 ).to_csv(tmp_path / "head_pruning.csv", index=False)
    pd.DataFrame({"dataset": "sst", "model": "minilm", "seed": 0, "layer": [0, 1, 2, 0, 1, 2],
                  "readout": ["probe"] * 3 + ["probe_shuffled_labels"] * 3,
                  "accuracy": [0.52, 0.6, 0.85, 0.5, 0.53, 0.51], "ci_low": [0.45, 0.49, 0.8, 0.4, 0.45, 0.44],
                  "ci_high": 1, "agreement_with_model": 0.5, "chance": 0.51, "n": 500}
                 ).to_csv(tmp_path / "layer_readout.csv", index=False)
    pd.DataFrame({"dataset": "sst", "model": "minilm", "mode": "remove", "metric": "aopc_comprehensiveness",
                  "ensemble": ["ensemble_mean"], "ensemble_value": 0.3, "best_member": "occlusion",
                  "best_member_value": 0.35, "gain": -0.05, "gain_ci_low": -0.07, "gain_ci_high": -0.03,
                  "verdict": "worse", "n": 500}).to_csv(tmp_path / "ensembles_vs_best_member.csv", index=False)
    text = answers_markdown(tmp_path, "paper")
    assert "sst/minilm: Spearman ρ 0.12 (p = 0.310, 72 heads)" in text
    assert "accuracy 0.90 with every head, 0.88 without the least important 50%, 0.61 without the most important" in text
    assert "linearly readable from layer 2 of 2" in text and "control peaks at 0.53" in text
    assert "sst/minilm ensemble_mean vs occlusion: worse (paired gain -0.050 [-0.070, -0.030])" in text
    assert "`16_internals` has not been run" not in text and "`17_explanation_ensembles` has not been run" not in text


def test_scaling_answers_and_the_evidence_table_come_from_the_tables(tmp_path):
    from aine_lib.report.findings import evidence_table, seed_answers_markdown

    rows = []
    for family, method, values in (("lstm", "attention", (0.10, 0.12)), ("minilm", "attention_cls_last", (0.2, 0.4))):
        for fraction, v in zip((0.1, 1.0), values):
            for metric in ("aopc_comprehensiveness", "tau_loo_length_std"):
                rows.append({"grid": "data", "family": family, "dataset": "sst", "fraction": fraction, "layers": None,
                             "hidden": None, "method": method, "role": "attention", "best_other": False,
                             "metric": metric, "value": v, "ci_low": v - 0.05, "ci_high": v + 0.05})
            rows.append({"grid": "data", "family": family, "dataset": "sst", "fraction": fraction, "layers": None,
                         "hidden": None, "method": "", "role": "model", "best_other": False, "metric": "accuracy",
                         "value": 0.8, "ci_low": 0.75, "ci_high": 0.85})
    pd.DataFrame(rows).to_csv(tmp_path / "scaling_data.csv", index=False)
    pd.DataFrame({"grid": "data", "family": ["lstm", "minilm"], "dataset": "sst", "fraction": 1.0, "layers": None,
                  "hidden": None, "metric": "aopc_comprehensiveness",
                  "attention_method": ["attention", "attention_cls_last"], "best_other": "loo",
                  "attention_value": [0.12, 0.4], "best_other_value": [0.3, 0.45], "difference": [-0.18, -0.05],
                  "ci_low": [-0.2, -0.08], "ci_high": [-0.16, -0.02], "effect_size_dz": [-1.5, -0.4],
                  "p_value": 0.001, "n_examples": 200, "n_seeds": 3, "q_value": [0.002, 0.004],
                  "significant": True, "verdict": "attention_worse"}).to_csv(tmp_path / "scaling_tests.csv",
                                                                             index=False)
    text = seed_answers_markdown(tmp_path, "paper")
    assert ("sst: minilm -0.050 [-0.080, -0.020] vs loo (attention worse, d_z -0.40, q = 0.004); "
            "lstm -0.180 [-0.200, -0.160] vs loo") in text
    assert "sst: minilm 0.40 [0.35, 0.45], lstm 0.12 [0.07, 0.17]" in text
    assert "sst/minilm 0.20 at 10% → 0.40 at 100% (up)" in text
    assert "sst/lstm 0.10 at 10% → 0.12 at 100% (no clear change)" in text
    assert text.count("### ") == 5
    table = evidence_table(tmp_path)
    assert set(table["question_number"]) == {1, 2, 3, 4, 5}
    scaling = table[table["question_number"] == 5]
    assert (scaling["chapter"] == "14").all() and (scaling["table"] == "scaling_data.csv").all()
    assert not scaling["pending"].any() and table[table["question_number"] == 1]["pending"].all()


def test_decay_answer_sets_the_curve_peak_against_the_per_step_evidence(tmp_path):
    from aine_lib.report.findings import evidence_table, seed_answers_markdown

    pd.DataFrame({"task": "bible", "seed": 0, "layer": [1, 1, 3, 3, 3], "distance": [0, 1, -1, 0, 1],
                  "mass": [0.9, 0.05, 0.1, 0.34, 0.1]}).to_csv(tmp_path / "seq2seq_attention_decay.csv", index=False)
    metrics = ["top_attention_is_top_loo", "erase_top_attention", "erase_top_loo", "erase_random",
               "permutation_change_rate"]
    pd.DataFrame({"task": "bible", "variant": ["softmax"] * 5 + ["entmax15"], "metric": metrics + metrics[:1],
                  "value": [0.66, 2.0, 3.0, 0.1, 0.5, 0.9], "ci_low": 0, "ci_high": 1, "n_tokens": 10,
                  "n_sentences": 5}).to_csv(tmp_path / "seq2seq_faithfulness.csv", index=False)
    pd.DataFrame({"task": "bible", "variant": "softmax", "attention_max_low": [0.0, 0.4, 0.8],
                  "attention_max_high": [0.4, 0.8, 1.0], "share_of_steps": [0.37, 0.6, 0.03],
                  "top_attention_is_top_loo": [0.41, 0.8, 1.0]}).to_csv(tmp_path / "seq2seq_peakedness.csv", index=False)
    text = seed_answers_markdown(tmp_path, "paper")
    # the last layer (3), not layer 1; the entmax variant is not read; a bin under 5 % of steps is left out
    assert ("bible: 0.34 of the last layer's attention at distance 0, yet the most-attended token is the LOO-best "
            "for 66% of tokens (41% where the largest weight is ≤ 0.4, 37% of steps; 80% where it is > 0.4)") in text
    evidence = evidence_table(tmp_path)
    row = evidence[evidence["finding"].str.startswith("Decay curves")].iloc[0]
    assert (row["question_number"], row["chapter"], row["table"]) == (2, "13", "seq2seq_attention_decay.csv")
    (tmp_path / "seq2seq_peakedness.csv").unlink()
    assert "Decay curves" not in seed_answers_markdown(tmp_path, "paper")
