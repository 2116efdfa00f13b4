"""A run killed with SIGKILL in the middle, then started again with the same command, ends with the same bytes.

Runs ``aine run --config configs/smoke.yaml --only 01_performance`` (it trains the smoke RNN models), kills the
driver and its notebook kernel with SIGKILL as soon as the first model is in the cache, runs the same command
again, and compares its tables byte for byte with an uninterrupted run in a separate cache. Needs the smoke data
(``aine fetch --config configs/smoke.yaml``, which ``make test`` runs first).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.conftest import REPO

NOTEBOOK = "01_performance"


def _command(root):
    return [sys.executable, "-m", "aine_lib.study.cli", "run", "--config", str(REPO / "configs" / "smoke.yaml"),
            "--only", NOTEBOOK, "--set", f"output_dir={root / 'out'}", "--set", f"cache_dir={root / 'cache'}",
            "--set", f"executed_dir={root / 'executed'}", "--set", "progress=false"]


def _kill_tree(process: subprocess.Popen) -> None:
    parent = psutil.Process(process.pid)
    family = parent.children(recursive=True) + [parent]
    for p in family:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=30)


def _tables(root) -> dict[str, bytes]:
    folder = root / "out" / "tables"
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.csv")) if p.name != "study_runtime.csv"}


def test_a_run_killed_mid_way_resumes_to_the_same_tables(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    killed = tmp_path / "killed"
    process = subprocess.Popen(_command(killed), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    models = killed / "cache" / "rnn_classifiers"
    while not any(models.glob("*.json")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if process.poll() is not None:
        pytest.fail(f"the run ended (exit {process.returncode}) before its first model was cached")
    _kill_tree(process)
    assert not (killed / "out" / "tables" / "performance.csv").exists(), "killed too late to test a resume"
    resumed = subprocess.run(_command(killed), cwd=REPO, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    clean = tmp_path / "clean"
    uninterrupted = subprocess.run(_command(clean), cwd=REPO, env=env, capture_output=True, text=True)
    assert uninterrupted.returncode == 0, uninterrupted.stdout[-2000:] + uninterrupted.stderr[-2000:]
    a, b = _tables(killed), _tables(clean)
    assert set(a) == {"performance.csv", "performance_runs.csv"} == set(b)
    assert a == b
