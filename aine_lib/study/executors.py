"""Spreading a grid of independent runs over local processes or a Ray cluster, with one shared cache.

A task is a top-level function and picklable arguments. The function does its own caching in
:class:`~aine_lib.cache.ResultCache` (entries are written to a temporary file and renamed into place), so every
executor shares the same results: a grid point computed by a Ray worker is a cache hit for a later local
run and the other way round, and a run killed half-way resumes where it stopped.

* :class:`SerialExecutor` -- in this process (``workers: 1``); what the tests and a debugger want.
* :class:`LocalExecutor` -- a pool of ``workers`` processes (``spawn``, so no CUDA or OpenMP state is
  inherited), each limited to its share of the CPU threads: ``workers`` torch processes with all threads
  each oversubscribe the cores, which on small models costs far more than it gains.
* :class:`RayExecutor` -- tasks of one CPU each on an existing cluster (``ray_address``) or on a local Ray
  instance started for the run and stopped after it. Ray is an optional dependency (``pip install -e
  '.[scale]'``).

``aine run --executor ray --workers 8`` sets ``executor``/``workers`` for every notebook of the run.

Reproducibility: torch's CPU kernels may sum in a different order with a different number of threads, so a
point trained with 2 threads and the same point trained with 1 can differ in the last bits of their weights
and, through training, in the third decimal of a metric. The cache keeps whichever was computed first; to
compare executors bit for bit, give them the same threads per task (Ray tasks always get 1; ``LocalExecutor(n,
threads=1)``; ``torch.set_num_threads(1)`` for a serial run).
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from aine_lib.config import StudyConfig


def _threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def _limit_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def _call_limited(fn: Callable, threads: int, args: tuple) -> Any:
    _limit_threads(threads)
    return fn(*args)


class SerialExecutor:
    """Runs every task here, in order."""

    name = "serial"
    workers = 1

    def map(self, fn: Callable, tasks: Sequence[tuple], desc: str | None = None, progress: bool = False) -> list:
        return [fn(*args) for args in tqdm(tasks, desc=desc, disable=not progress)]

    def close(self) -> None:
        pass


class LocalExecutor:
    """A process pool of ``workers`` spawned processes; results come back in task order."""

    name = "local"

    def __init__(self, workers: int, threads: int | None = None):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None (the worker's share of the cores), got {threads}")
        self.workers = workers
        self.threads = threads

    def map(self, fn: Callable, tasks: Sequence[tuple], desc: str | None = None, progress: bool = False) -> list:
        threads = self.threads or _threads_per_worker(self.workers)
        results: list = [None] * len(tasks)
        with ProcessPoolExecutor(max_workers=min(self.workers, max(len(tasks), 1)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_call_limited, fn, threads, tuple(args)): i for i, args in enumerate(tasks)}
            for future in tqdm(as_completed(futures), total=len(futures), desc=desc, disable=not progress):
                results[futures[future]] = future.result()
        return results

    def close(self) -> None:
        pass


#: local Ray start-ups tried before giving up (Ray waits a hard-coded 30 s for its raylet, which a loaded
#: machine can miss; a second try then succeeds)
RAY_START_ATTEMPTS = 3


def _init_ray(ray, address: str | None, kwargs: dict) -> None:
    """``ray.init``; a local instance that timed out during start-up is shut down and started again."""
    for attempt in range(1, RAY_START_ATTEMPTS + 1):
        try:
            ray.init(address=address, **kwargs)
            return
        except Exception as exc:  # noqa: BLE001 - Ray raises a bare Exception for this one
            if address is not None or "timed out during startup" not in str(exc) or attempt == RAY_START_ATTEMPTS:
                raise
            ray.shutdown()
            warnings.warn(f"Ray start-up timed out (attempt {attempt} of {RAY_START_ATTEMPTS}); starting again",
                          stacklevel=3)


class RayExecutor:
    """Ray tasks of one CPU each; starts (and later stops) a local Ray instance unless given an address."""

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise ImportError("executor 'ray' needs Ray: pip install -e '.[scale]' (or pip install ray), "
                              "or run with --executor local") from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if address is None:
                kwargs["num_cpus"] = workers or os.cpu_count() or 1
            _init_ray(ray, address, kwargs)
            self._started = True
        self.workers = int(ray.cluster_resources().get("CPU", 1))

    def map(self, fn: Callable, tasks: Sequence[tuple], desc: str | None = None, progress: bool = False) -> list:
        ray = self._ray
        remote = ray.remote(num_cpus=1)(_call_limited)
        refs = [remote.remote(fn, 1, tuple(args)) for args in tasks]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list = [None] * len(refs)
        pending = list(refs)
        with tqdm(total=len(refs), desc=desc, disable=not progress) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    results[index[ref]] = ray.get(ref)
                    bar.update(1)
        return results

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
            self._started = False


def get_executor(cfg: StudyConfig):
    """The executor the config asks for (``executor``, ``workers``, ``ray_address``)."""
    if cfg.executor == "ray":
        return RayExecutor(cfg.workers, cfg.ray_address)
    workers = cfg.workers or os.cpu_count() or 1
    return SerialExecutor() if workers == 1 else LocalExecutor(workers)
