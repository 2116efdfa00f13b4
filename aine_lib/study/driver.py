"""The study driver: execute the config's notebooks with papermill, injecting parameters.

Every notebook receives ``config`` (absolute path of the config file) and
``overrides`` (dotted keys -> values, applied on top of the file), plus the
notebook's own ``parameters`` from the config. Executed copies are saved
under ``executed_dir``. A failing notebook is reported with its name and the
failing cell, and the remaining notebooks still run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import papermill as pm
from papermill.exceptions import PapermillExecutionError
from tqdm.auto import tqdm

from aine_lib.config import ConfigError, StudyConfig
from aine_lib.repro import progress_enabled


@dataclass(frozen=True)
class NotebookOutcome:
    name: str
    ok: bool
    seconds: float
    executed_path: Path
    error: str | None = None
    failed_cell: int | None = None

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
    return outcomes
