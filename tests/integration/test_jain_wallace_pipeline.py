"""The Jain & Wallace pipeline end to end on a tiny planted task: same seed, same table bytes.

Needs GloVe in the data cache (``make test`` fetches it first).
"""

import pandas as pd

from aine_lib.config import load_config
from aine_lib.experiments import jain_wallace as jw

TINY_RNN = ("rnn:\n  encoders: [average, lstm]\n  attentions: [additive]\n  seeds: [0]\n  hidden_dim: 8\n"
            "  epochs: 2\n  max_analysis_examples: 12\n  n_permutations: 5\n  adversary_steps: 5\n"
            "  adversary_candidates: 2\n")


def _tables(cfg_path, cache_dir):
    cfg = load_config(cfg_path, overrides={"cache_dir": str(cache_dir)})
    study = jw.RNNStudy(cfg)
    tau = jw.tau_table(jw.tau_per_instance(study), seed=cfg.seed)
    perm = jw.permutation_table(jw.permutation_per_instance(study))
    adv = jw.adversarial_table(jw.adversarial_per_instance(study), seed=cfg.seed)
    perf = jw.summarise_over_seeds(jw.performance_runs(study))
    return [t.to_csv(index=False, float_format="%.6g") for t in (tau, perm, adv, perf)], study


def test_same_seed_same_bytes_with_fresh_caches(tiny_config, tmp_path, monkeypatch):
    from tests.conftest import REPO

    monkeypatch.setenv("AINE_DATA_DIR", str(load_config(REPO / "configs/smoke.yaml").data_root))
    path = tiny_config(TINY_RNN)
    first, study = _tables(path, tmp_path / "cache1")
    second, _ = _tables(path, tmp_path / "cache2")
    assert first == second
    tau = pd.read_csv(pd.io.common.StringIO(first[0]))
    assert set(tau["comparison"]) == {"attention~gradient", "attention~loo", "gradient~loo"}
    assert tau["tau_mean"].between(-1, 1).all() and (tau["n"] > 0).all()
    adv = pd.read_csv(pd.io.common.StringIO(first[2]))
    assert adv["max_jsd_mean"].between(0, 0.6932).all()
