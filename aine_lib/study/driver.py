"""The study driver: execute the config's notebooks with papermill, injecting parameters.

Every notebook receives ``config`` (absolute path of the config file) and
``overrides`` (dotted keys -> values, applied on top of the file), plus the
notebook's own ``parameters`` from the config. Executed copies are saved
under ``executed_dir``. A failing notebook is reported with its name and the
failing cell, and the remaining notebooks still run.

Each notebook's run is profiled (:mod:`aine_lib.timing`): wall time, seconds
spent training, attributing, evaluating and building data, cache hits and
misses, cores and torch threads; :func:`run_study` writes one row per notebook
to ``tables/study_runtime.csv`` (rows of notebooks not rerun are kept).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import papermill as pm
import torch
from papermill.exceptions import PapermillExecutionError
from tqdm.auto import tqdm

from aine_lib.cache import RunContext
from aine_lib.config import ConfigError, StudyConfig
from aine_lib.repro import progress_enabled
from aine_lib.timing import LOG_ENV, summarise


@dataclass(frozen=True)
class NotebookOutcome:
    name: str
    ok: bool
    seconds: float
    executed_path: Path
    error: str | None = None
    failed_cell: int | None = None
    profile: dict = field(default_factory=dict)

    def describe(self) -> str:
        if self.ok:
            return f"{self.name}: ok in {self.seconds:.1f} s -> {self.executed_path}"
        where = f" at cell {self.failed_cell}" if self.failed_cell is not None else ""
        return f"{self.name}: FAILED{where} after {self.seconds:.1f} s: {self.error} (see {self.executed_path})"


def select_notebooks(cfg: StudyConfig, only: Sequence[str] | None) -> list[str]:
    names = [nb.name for nb in cfg.notebooks]
    if not only:
        return names
    unknown = [n for n in only if n not in names]
    if unknown:
        raise ConfigError(f"--only names unknown notebook(s) {unknown}; config {cfg.name!r} has {names}")
    return [n for n in names if n in only]


def execute_notebook(cfg: StudyConfig, name: str, overrides: Mapping[str, Any] | None = None,
                     progress: bool = False) -> NotebookOutcome:
    """Execute one notebook; the outcome carries its profile (:func:`aine_lib.timing.summarise`)."""
    with tempfile.TemporaryDirectory(prefix="aine-runtime-") as tmp:
        log = Path(tmp) / "events.jsonl"
        previous = os.environ.get(LOG_ENV)
        os.environ[LOG_ENV] = str(log)          # the kernel (and its worker processes) inherit it
        try:
            outcome = _execute(cfg, name, overrides, progress)
        finally:
            if previous is None:
                os.environ.pop(LOG_ENV, None)
            else:
                os.environ[LOG_ENV] = previous
        return replace(outcome, profile=summarise(log))


def _execute(cfg: StudyConfig, name: str, overrides: Mapping[str, Any] | None, progress: bool) -> NotebookOutcome:
    source = cfg.path(cfg.notebook_dir) / f"{name}.ipynb"
    executed = cfg.path(cfg.executed_dir) / f"{name}.ipynb"
    started = time.perf_counter()
    if not source.exists():
        return NotebookOutcome(name, False, 0.0, executed,
                               error=f"notebook file {source} does not exist; fix notebooks[].name in the config")
    executed.parent.mkdir(parents=True, exist_ok=True)
    parameters = {"config": cfg.source, "overrides": dict(overrides or {}),
                  **{k: v for k, v in cfg.notebook(name).parameters.items()}}
    try:
        pm.execute_notebook(
            str(source), str(executed), parameters=parameters, cwd=str(source.parent),
            kernel_name="python3", progress_bar=progress, log_output=False,
        )
    except PapermillExecutionError as exc:
        return NotebookOutcome(name, False, time.perf_counter() - started, executed,
                               error=f"{exc.ename}: {exc.evalue}", failed_cell=exc.cell_index)
    except Exception as exc:  # noqa: BLE001 - a kernel crash or bad notebook must not stop the others
        return NotebookOutcome(name, False, time.perf_counter() - started, executed,
                               error=f"{type(exc).__name__}: {exc}")
    return NotebookOutcome(name, True, time.perf_counter() - started, executed)


def runtime_table(cfg: StudyConfig, outcomes: Sequence[NotebookOutcome], commit: str) -> pd.DataFrame:
    """One row per executed notebook: wall time, its split by phase, cache hits/misses, machine facts."""
    rows = []
    for o in outcomes:
        p = dict(o.profile)
        hits, misses = p.get("cache_hits", 0), p.get("cache_misses", 0)
        cache = "none" if hits + misses == 0 else "warm" if misses == 0 else "cold" if hits == 0 else "mixed"
        phases = sum(p.get(k, 0.0) for k in ("train_s", "attribute_s", "evaluate_s", "data_s"))
        rows.append({"notebook": o.name, "ok": o.ok, "wall_s": round(o.seconds, 1), **p,
                     "other_s": round(max(o.seconds - phases, 0.0), 1), "cache": cache, "config": cfg.name,
                     "commit": commit, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                     "device": cfg.device})
    return pd.DataFrame(rows)


def save_runtime(cfg: StudyConfig, outcomes: Sequence[NotebookOutcome]) -> Path:
    """Write (or update) ``tables/study_runtime.csv``: this run's rows replace those of the same notebooks."""
    run = RunContext(cfg, notebook="aine_lib/study/driver.py")
    table = runtime_table(cfg, outcomes, run.commit)
    path = cfg.tables_dir / "study_runtime.csv"
    if path.exists():
        old = pd.read_csv(path)
        table = pd.concat([old[~old["notebook"].isin(table["notebook"])], table], ignore_index=True)
    order = {nb.name: i for i, nb in enumerate(cfg.notebooks)}
    table = table.sort_values("notebook", key=lambda s: s.map(order).fillna(len(order)), kind="stable")
    return run.save_table(table.reset_index(drop=True), "study_runtime")


def run_study(cfg: StudyConfig, only: Sequence[str] | None = None,
              overrides: Mapping[str, Any] | None = None) -> list[NotebookOutcome]:
    """Execute the selected notebooks in config order; never stops at the first failure."""
    names = select_notebooks(cfg, only)
    progress = progress_enabled(cfg)
    outcomes = []
    bar = tqdm(names, desc=f"study [{cfg.name}]", unit="notebook", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        outcomes.append(execute_notebook(cfg, name, overrides, progress=progress))
    if outcomes:
        save_runtime(cfg, outcomes)
    return outcomes
