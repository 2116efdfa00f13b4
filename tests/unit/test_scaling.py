"""Scaling grids (notebook 14) and the executors that run them: properties that can fail."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from aine_lib.config import ConfigError, load_config
from aine_lib.study.executors import LocalExecutor, SerialExecutor, get_executor
from aine_lib.experiments import scaling as sc
from aine_lib.experiments import scaling_statistics as scs

TINY = ("  planted: {n_train: 200, n_dev: 60, n_test: 60, seed: 7}\n"
        "rnn:\n  hidden_dim: 8\n  epochs: 2\n  batch_size: 16\n"
        "transformer:\n  scratch: {hidden: 16, layers: 1, heads: 4, intermediate: 32, dropout: 0.0, epochs: 2}\n"
        "  max_length: 32\n  batch_size: 16\n  patience: null\n  fractions: [0.2, 0.5]\n  ig_steps: 4\n"
        "scaling:\n  datasets: [planted]\n  families: [average, scratch]\n  fractions: [0.5, 1.0]\n"
        "  seeds: [0, 1]\n  max_analysis_examples: 20\n  model_datasets: [planted]\n  model_layers: [1]\n"
        "  model_hidden: [8, 16]\n  model_seeds: [0]\n")


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    from tests.conftest import REPO

    root = tmp_path_factory.mktemp("scaling")
    path = root / "configs" / "tiny.yaml"
    path.parent.mkdir()
    path.write_text("name: tiny\noutput_dir: out\ndata:\n  datasets: [planted]\n" + TINY)
    smoke = load_config(REPO / "configs" / "smoke.yaml")
    return load_config(path, overrides={"cache_dir": str(root / "cache"), "progress": False,
                                        "data.root": str(smoke.data_root)})


# ----- data ---------------------------------------------------------------------------------------

def test_training_subsets_are_stratified_seeded_and_complete_at_one():
    labels = np.array([0] * 80 + [1] * 20)
    half = sc.training_subset(labels, 0.5, seed=0)
    assert len(half) == 50 and (labels[half] == 1).sum() == 10                 # the class balance is kept
    assert np.array_equal(half, np.sort(half)) and len(set(half)) == 50
    assert np.array_equal(half, sc.training_subset(labels, 0.5, seed=0))
    assert not np.array_equal(half, sc.training_subset(labels, 0.5, seed=1))
    assert np.array_equal(sc.training_subset(labels, 1.0, seed=3), np.arange(100))
    with pytest.raises(ValueError, match="leaves a class out"):
        sc.training_subset(np.array([0] * 99 + [1]), 0.1, seed=0)


def test_length_standardised_mean_weighs_every_stratum_the_same():
    lengths = np.array([5] * 8 + [50] * 2)
    strata = sc.length_strata(lengths, 2)
    assert set(strata[:8]) != set(strata[8:])
    from aine_lib.metrics.bootstrap import hierarchical_bootstrap

    values = np.array([[0.0] * 8 + [1.0] * 2, [0.0] * 8 + [1.0] * 2])        # two seeds, ten examples
    value, draws = hierarchical_bootstrap(values, seed=0, strata=strata)
    assert value == pytest.approx(0.5) and values.mean() == pytest.approx(0.2)   # vs the plain mean
    assert np.allclose(draws, 0.5)               # resampling within strata cannot move a constant stratum
    same, _ = hierarchical_bootstrap(values, seed=0)
    assert same == pytest.approx(0.2)


def test_the_two_level_bootstrap_widens_the_ci_when_seeds_disagree():
    from aine_lib.metrics.bootstrap import hierarchical_bootstrap

    rng = np.random.default_rng(0)
    examples = rng.normal(0, 1, 100)
    agree = np.vstack([examples, examples, examples])
    disagree = agree + np.array([[-1.0], [0.0], [1.0]])                         # a per-seed offset
    width = [np.ptp(np.quantile(hierarchical_bootstrap(m, seed=0)[1], [0.025, 0.975])) for m in (agree, disagree)]
    assert width[1] > 2 * width[0]
    with pytest.raises(ValueError, match="runs, examples"):
        hierarchical_bootstrap(np.zeros(3), seed=0)


# ----- statistics on made-up results ---------------------------------------------------------------

def _fake_result(seed: int, attention_shift: float, fraction: float = 1.0) -> dict:
    rng = np.random.default_rng(seed)
    n = 40
    base = rng.uniform(0.2, 0.6, n)
    rows = []
    for method, comp in (("attention", base + attention_shift), ("gradient_x_input", base),
                         ("integrated_gradients", base - 0.05), ("loo", base - 0.1)):
        for i in range(n):
            rows.append({"example": i, "method": method, "tau_loo": 0.3, "tau_top_k_loo": np.nan if method == "loo"
                         else 0.2, "aopc_comprehensiveness": comp[i], "aopc_sufficiency": 0.1,
                         "length_words": 5 + i})
    return {"point": sc.ScalingPoint("lstm", "sst", fraction, seed), "train_examples": 100, "seconds": 1.0,
            "accuracy": pd.DataFrame({"example": np.arange(n), "correct": (np.arange(n) % 4 != 0).astype(float)}),
            "methods": pd.DataFrame(rows)}


def test_paired_tests_call_a_consistent_gap_significant_and_no_gap_not(cfg):
    worse = [_fake_result(s, -0.05) for s in (0, 1)]
    same = [_fake_result(s, 0.0, fraction=0.5) for s in (0, 1)]
    tests = scs.paired_tests(worse + same, cfg, metrics=("aopc_comprehensiveness",)).set_index("fraction")
    assert tests.loc[1.0, "best_other"] == "gradient_x_input"
    assert tests.loc[1.0, "verdict"] == "attention_worse" and tests.loc[1.0, "difference"] == pytest.approx(-0.05)
    assert tests.loc[0.5, "verdict"] == "no_difference" and not tests.loc[0.5, "significant"]
    assert (tests["q_value"] >= tests["p_value"] - 1e-12).all()


def test_scaling_table_rows_roles_and_best_other(cfg):
    table = scs.scaling_table([_fake_result(s, 0.1) for s in (0, 1)], cfg)
    acc = table[table["metric"] == "accuracy"].iloc[0]
    assert acc["value"] == pytest.approx(0.75) and acc["n_seeds"] == 2 and acc["role"] == "model"
    comp = table[table["metric"] == "aopc_comprehensiveness"].set_index("method")
    assert comp.loc["attention", "role"] == "attention" and not comp.loc["attention", "best_other"]
    assert comp["best_other"].sum() == 1 and comp.loc["gradient_x_input", "best_other"]
    assert (comp["ci_low"] <= comp["value"]).all() and (comp["value"] <= comp["ci_high"]).all()
    assert "loo" not in set(table[table["metric"] == "tau_top_k_loo"]["method"])      # the reference itself


# ----- real points ----------------------------------------------------------------------------------

def test_a_point_trains_explains_and_is_cached(cfg, monkeypatch):
    point = sc.ScalingPoint("average", "planted", 0.5, 0)
    first = sc.run_point(cfg, point)
    assert first["train_examples"] == 100
    assert len(first["accuracy"]) == 60 and first["accuracy"]["correct"].isin([0, 1]).all()
    per = first["methods"]
    assert set(per["method"]) == {"attention", "gradient_x_input", "integrated_gradients", "loo"}
    assert per["example"].nunique() == 20 and per["tau_loo"].dropna().between(-1, 1).all()
    assert per[per["method"] == "loo"]["tau_loo"].isna().all()
    monkeypatch.setattr(sc, "_compute_point", lambda *a: (_ for _ in ()).throw(AssertionError("recomputed")))
    again = sc.run_point(cfg, point)
    pd.testing.assert_frame_equal(first["methods"], again["methods"])


@pytest.fixture
def one_thread():
    """Serial reference runs with the one thread per task that the pool and Ray workers get (a different
    thread count may change the last bits of training, see aine_lib.study.executors)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_grid_is_the_same_serially_and_in_a_process_pool(cfg, one_thread):
    points = [sc.ScalingPoint("scratch", "planted", 1.0, 0, layers=1, hidden=8),
              sc.ScalingPoint("scratch", "planted", 0.5, 1)]
    serial = sc.run_grid(replace(cfg, cache_dir=cfg.cache_dir + "_serial1"), points, SerialExecutor())
    pooled = sc.run_grid(replace(cfg, cache_dir=cfg.cache_dir + "_pool"), points,
                         LocalExecutor(2, threads=1))
    for a, b in zip(serial, pooled):
        assert a["point"] == b["point"]
        pd.testing.assert_frame_equal(a["methods"], b["methods"], atol=1e-6, rtol=1e-5)
        pd.testing.assert_frame_equal(a["accuracy"], b["accuracy"])
    assert set(serial[1]["methods"]["method"]) == {"attention_cls_last", "attention_cls_mean", "gradient_x_input",
                                                   "integrated_gradients", "loo"}


def test_the_ray_executor_runs_the_grid_on_a_local_ray_instance(cfg, one_thread):
    pytest.importorskip("ray")
    from aine_lib.study.executors import RayExecutor

    points = [sc.ScalingPoint("average", "planted", 1.0, 0), sc.ScalingPoint("average", "planted", 0.5, 1)]
    serial = sc.run_grid(replace(cfg, cache_dir=cfg.cache_dir + "_serial1"), points, SerialExecutor())
    fresh = replace(cfg, cache_dir=cfg.cache_dir + "_ray")
    executor = RayExecutor(workers=2)
    try:
        assert executor.workers == 2
        on_ray = sc.run_grid(fresh, points, executor)
    finally:
        executor.close()
    for a, b in zip(serial, on_ray):
        pd.testing.assert_frame_equal(a["methods"], b["methods"], atol=1e-6, rtol=1e-5)
    # the Ray workers filled the shared cache: a local run now only reads it
    assert all(sc.run_point(fresh, p)["seconds"] == r["seconds"] for p, r in zip(points, on_ray))


def test_executor_and_scaling_config_errors_name_the_fix(tiny_config, cfg):
    with pytest.raises(ConfigError, match="executor"):
        load_config(tiny_config("executor: dask\n"))
    with pytest.raises(ConfigError, match="workers"):
        load_config(tiny_config("workers: 0\n"))
    with pytest.raises(ConfigError, match="scaling.other_methods must include 'loo'"):
        load_config(tiny_config("scaling:\n  other_methods: [gradient_x_input]\n"))
    with pytest.raises(ConfigError, match="not attention methods"):
        load_config(tiny_config("scaling:\n  attention_methods: [loo]\n"))
    assert isinstance(get_executor(replace(cfg, workers=1)), SerialExecutor)
    bad = replace(cfg, data=replace(cfg.data, datasets=("sst",)))
    with pytest.raises(ValueError, match="not in data.datasets"):
        sc.check_datasets(bad)


def test_family_seeds_replace_the_seeds_of_one_family_only(tiny_config, cfg):
    s = replace(cfg.scaling, family_seeds={"scratch": (3,)})
    points = sc.data_points(replace(cfg, scaling=s))
    assert {p.seed for p in points if p.family == "scratch"} == {3}
    assert {p.seed for p in points if p.family == "average"} == set(cfg.scaling.seeds)
    assert len(points) == len(cfg.scaling.fractions) * (len(cfg.scaling.seeds) + 1)
    with pytest.raises(ConfigError, match="not in scaling.families"):
        load_config(tiny_config("scaling:\n  families: [average]\n  family_seeds: {lstm: [0]}\n"))
    with pytest.raises(ConfigError, match="family_seeds.average must be a non-empty list"):
        load_config(tiny_config("scaling:\n  family_seeds: {average: []}\n"))
