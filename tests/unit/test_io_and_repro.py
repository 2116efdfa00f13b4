import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from aine_lib.config import load_config
from aine_lib.cache import ResultCache, RunContext, atomic_write, params_key
from aine_lib.repro import get_device, make_generator, seed_everything


def test_params_key_is_order_independent_and_sensitive():
    assert params_key({"a": 1, "b": [1, 2]}) == params_key({"b": [1, 2], "a": 1})
    assert params_key({"a": 1}) != params_key({"a": 2})
    assert params_key({"a": np.int64(3)}) == params_key({"a": 3})
    with pytest.raises(TypeError, match="cannot use a object"):
        params_key({"a": object()})


def test_cache_computes_once_and_resumes(tmp_path):
    cache = ResultCache(tmp_path)
    calls = []
    def compute():
        calls.append(1)
        return {"acc": 0.9}
    assert cache.get_or_compute("models", {"seed": 1}, compute) == {"acc": 0.9}
    assert ResultCache(tmp_path).get_or_compute("models", {"seed": 1}, compute) == {"acc": 0.9}
    assert len(calls) == 1 and cache.has("models", {"seed": 1})


def test_cache_failed_compute_writes_nothing(tmp_path):
    cache = ResultCache(tmp_path)
    def boom():
        raise RuntimeError("killed half-way")
    with pytest.raises(RuntimeError):
        cache.get_or_compute("models", {"seed": 1}, boom)
    assert not cache.has("models", {"seed": 1})
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_cache_corrupted_entry_is_recomputed_not_returned(tmp_path):
    cache = ResultCache(tmp_path)
    cache.get_or_compute("t", {"k": 1}, lambda: [1, 2, 3])
    entry = cache.entry("t", {"k": 1})
    entry.write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="does not match its checksum"):
        assert cache.get_or_compute("t", {"k": 1}, lambda: [4]) == [4]


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "t.csv"
    target.write_text("old")
    with pytest.raises(ValueError):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise ValueError("crash")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def _outputs(cfg_path, out):
    import matplotlib.pyplot as plt
    from aine_lib.data import load_dataset
    from aine_lib.experiments.data_overview import dataset_summary, length_table
    from aine_lib.report.plots import length_histograms

    cfg = load_config(cfg_path, overrides={"output_dir": str(out)})
    run = RunContext(cfg, notebook="00_data", device="cpu")
    datasets = {"planted": load_dataset("planted", cfg)}
    table = run.save_table(dataset_summary(datasets, glove=None, seed=cfg.seed), "summary")
    fig = length_histograms(length_table(datasets))
    figure = run.save_figure(fig, "lengths")
    plt.close(fig)
    return table.read_bytes(), figure.read_bytes(), cfg


def test_same_seed_same_bytes_and_manifest(tiny_config, tmp_path):
    path = tiny_config()
    t1, f1, cfg = _outputs(path, tmp_path / "run1")
    t2, f2, _ = _outputs(path, tmp_path / "run2")
    assert t1 == t2 and f1 == f2
    manifest = json.loads((tmp_path / "run1" / "figures" / "manifest.json").read_text())
    record = manifest["lengths.png"]
    assert record["notebook"] == "notebooks/00_data.ipynb" and record["config_name"] == "tiny"
    assert {"git_commit", "packages", "device", "runtime_s", "parameters", "sha256"} <= set(record)
    assert record["packages"]["torch"].startswith("2.13")


def test_manifest_that_is_not_json_is_not_overwritten(tiny_config, tmp_path):
    cfg = load_config(tiny_config(), overrides={"output_dir": str(tmp_path / "o")})
    cfg.tables_dir.mkdir(parents=True)
    (cfg.tables_dir / "manifest.json").write_text("{broken")
    with pytest.raises(RuntimeError, match="git checkout"):
        RunContext(cfg, notebook="x", device="cpu").save_table(pd.DataFrame({"a": [1]}), "t")
    assert (cfg.tables_dir / "manifest.json").read_text() == "{broken"


def _hammer_manifest(args):
    from aine_lib.cache import _update_manifest

    path, worker = args
    for i in range(200):
        _update_manifest(Path(path), f"w{worker}_{i}", {"i": i})


def test_concurrent_manifest_saves_keep_every_entry(tmp_path):
    """Two chains writing one manifest at once: no save drops another's entry."""
    import multiprocessing

    path = tmp_path / "manifest.json"
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        pool.map(_hammer_manifest, [(str(path), w) for w in range(3)])
    assert len(json.loads(path.read_text())) == 600


def _compute_once(root, log, ready, out):
    import os
    import time

    def compute():
        with open(log, "a") as f:
            f.write("computed\n")
        time.sleep(0.5)   # long enough that the other workers ask while the first one computes
        return {"value": 42}

    # start line: no worker asks for the entry before all three are running (spawn start-up times differ)
    Path(ready, str(os.getpid())).touch()
    deadline = time.time() + 120
    while len(os.listdir(ready)) < 3 and time.time() < deadline:
        time.sleep(0.01)
    Path(out).write_text(json.dumps(ResultCache(root).get_or_compute("ns", {"x": 1}, compute)))


def test_processes_needing_one_missing_entry_compute_it_once(tmp_path):
    """Two chains (or executor workers) asking for the same missing entry: one computes, the others wait."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    log, ready = tmp_path / "computed.log", tmp_path / "ready"
    ready.mkdir()
    workers = [ctx.Process(target=_compute_once, args=(str(tmp_path / "cache"), str(log), str(ready),
                                                       str(tmp_path / f"out{i}.json"))) for i in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=180)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert [json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(3)] == [{"value": 42}] * 3
    assert log.read_text().count("computed") == 1


def test_output_names_are_checked(tiny_config, tmp_path):
    cfg = load_config(tiny_config(), overrides={"output_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="no suffix"):
        RunContext(cfg, notebook="x", device="cpu").save_table(pd.DataFrame({"a": [1]}), "t.csv")


def test_seed_everything_repeats_torch_and_numpy():
    seed_everything(5)
    a = (torch.randn(3), np.random.rand(3))
    seed_everything(5)
    b = (torch.randn(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    g1, g2 = make_generator(9), make_generator(9)
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))


def test_get_device():
    assert get_device("cpu").type == "cpu"
    assert get_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="one of"):
        get_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="device: auto"):
            get_device("cuda")


def test_bootstrap_ci_brackets_mean_and_is_seeded():
    from aine_lib.metrics.bootstrap import bootstrap_ci

    x = np.random.default_rng(0).normal(3.0, 1.0, size=400)
    lo, hi = bootstrap_ci(x, seed=1)
    assert lo < x.mean() < hi and hi - lo < 0.3
    assert bootstrap_ci(x, seed=1) == (lo, hi)
    with pytest.raises(ValueError):
        bootstrap_ci([], seed=1)


def test_cluster_bootstrap_is_wider_than_the_row_bootstrap_for_duplicated_rows():
    from aine_lib.metrics.bootstrap import bootstrap_ci, cluster_bootstrap_ci

    rng = np.random.default_rng(0)
    per_example = rng.normal(size=200)
    values = np.repeat(per_example, 5)              # 5 "seeds" that agree exactly: 200 independent values
    clusters = np.repeat(np.arange(200), 5)
    lo_r, hi_r = bootstrap_ci(values, seed=1)
    lo_c, hi_c = cluster_bootstrap_ci(values, clusters, seed=1)
    lo_e, hi_e = bootstrap_ci(per_example, seed=1)
    assert hi_c - lo_c > 1.8 * (hi_r - lo_r)        # rows pretend to be 1000 independent values
    assert hi_c - lo_c == pytest.approx(hi_e - lo_e, rel=0.25)
    assert lo_c < values.mean() < hi_c
    med = cluster_bootstrap_ci(values, clusters, seed=1, statistic=np.median)
    assert med[0] < np.median(values) < med[1]
    with pytest.raises(ValueError, match="cluster labels"):
        cluster_bootstrap_ci(values, clusters[:-1], seed=1)


def _git(repo, *args):
    import subprocess

    return subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", *args], cwd=repo,
                          capture_output=True, text=True, check=True).stdout


def test_stage_outputs_adds_one_notebook_and_leaves_a_running_chains_entries_out(tmp_path, monkeypatch):
    import hashlib
    import os
    import shutil

    from aine_lib.cache import stage_outputs

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    for var in [v for v in os.environ if v.startswith("GIT_")]:      # never touch an enclosing repository
        monkeypatch.delenv(var)
    repo = tmp_path
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@t")
    _git(repo, "config", "user.name", "t")
    figures = repo / "figures"
    figures.mkdir()

    def entry(name, notebook, commit="abc"):
        (figures / name).write_bytes(name.encode())
        return {"notebook": f"notebooks/{notebook}.ipynb", "git_commit": commit,
                "sha256": hashlib.sha256(name.encode()).hexdigest()}

    def staged_names():
        return set(_git(repo, "diff", "--cached", "--name-only").split())

    committed = {"old.png": entry("old.png", "01_a")}
    (figures / "manifest.json").write_text(json.dumps(committed, indent=1, sort_keys=True) + "\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "first")
    working = dict(committed, **{"new.png": entry("new.png", "08_b"), "other.png": entry("other.png", "09_c"),
                                 "running.png": entry("running.png", "10_e")})
    before = json.dumps(working, indent=1, sort_keys=True) + "\n"
    (figures / "manifest.json").write_text(before)

    # a typo among the names: refused before anything is staged
    with pytest.raises(ValueError, match=r"no outputs of \['10_nothing'\]"):
        stage_outputs([figures], ["08_b", "10_nothing"], repo)
    assert staged_names() == set()

    stage_outputs([figures], ["08_b"], repo)
    stage_outputs([figures], ["09_c"], repo)     # a second stage before the commit keeps the first one's entries
    index = json.loads(_git(repo, "show", ":figures/manifest.json"))
    assert set(index) == {"old.png", "new.png", "other.png"}        # not 10_e's, still being written
    assert staged_names() == {"figures/manifest.json", "figures/new.png", "figures/other.png"}
    assert (figures / "manifest.json").read_text() == before          # the working manifest is untouched

    (figures / "running.png").write_bytes(b"changed after its run")
    with pytest.raises(ValueError, match="does not match its manifest entry"):
        stage_outputs([figures], ["10_e"], repo)
    working["dirty.png"] = entry("dirty.png", "11_d", commit="abc+dirty")
    (figures / "manifest.json").write_text(json.dumps(working, indent=1, sort_keys=True) + "\n")
    with pytest.raises(ValueError, match="uncommitted code"):
        stage_outputs([figures], ["11_d"], repo)
    assert staged_names() == {"figures/manifest.json", "figures/new.png", "figures/other.png"}
