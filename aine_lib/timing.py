"""Where a run's time goes: every cache computation is timed and logged, and the driver sums the log per notebook.

:class:`~aine_lib.cache.ResultCache` reports each ``get_or_compute`` here: a hit (with its load time) or a
computation (with its *exclusive* time: a computation that asks the cache for another entry is charged only
for its own work). When the environment variable :data:`LOG_ENV` names a file (the driver sets it for each
notebook it executes; the notebook's kernel and any worker process inherit it), each event is appended to it
as one JSON line. :func:`summarise` turns a log into one row of ``tables/study_runtime.csv``: seconds spent
training, attributing, evaluating and building data, by the cache namespace's :data:`PHASES`.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOG_ENV = "AINE_RUNTIME_LOG"

#: cache namespace -> what kind of work it is (anything not listed counts as "evaluate")
PHASES: dict[str, str] = {
    **{ns: "train" for ns in ("rnn_classifiers", "transformer_classifiers", "seq2seq_models",
                              "quickstart_classifier", "wp_guided", "wp_adversaries", "scaling_points")},
    **{ns: "attribute" for ns in ("rnn_attributions", "transformer_attributions", "seq2seq_scores")},
    "bible_task": "data",
}
PHASE_NAMES = ("train", "attribute", "evaluate", "data")

_stack: list[list[float]] = []        # per open computation: [start time, seconds spent in nested computations]


def phase(namespace: str) -> str:
    return PHASES.get(namespace, "evaluate")


def _log(event: dict) -> None:
    path = os.environ.get(LOG_ENV)
    if not path:
        return
    line = json.dumps(event, sort_keys=True) + "\n"
    with open(path, "a", encoding="utf-8") as f:      # one short append per event: whole lines under O_APPEND
        f.write(line)


def record_hit(namespace: str, seconds: float) -> None:
    _log({"namespace": namespace, "hit": True, "seconds": seconds, "pid": os.getpid()})


@contextmanager
def timed_compute(namespace: str) -> Iterator[None]:
    """Time one computation of a cache entry, excluding the nested computations it triggers."""
    frame = [time.perf_counter(), 0.0]
    _stack.append(frame)
    try:
        yield
    finally:
        _stack.pop()
        total = time.perf_counter() - frame[0]
        if _stack:
            _stack[-1][1] += total
        _log({"namespace": namespace, "hit": False, "seconds": total - frame[1], "pid": os.getpid()})


def summarise(log: str | os.PathLike) -> dict:
    """``{train_s, attribute_s, evaluate_s, data_s, cache_hits, cache_misses, worker_processes}`` of one log."""
    seconds: Counter = Counter()
    hits = misses = 0
    pids = set()
    path = Path(log)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for line in lines:
        event = json.loads(line)
        pids.add(event["pid"])
        if event["hit"]:
            hits += 1
        else:
            misses += 1
            seconds[phase(event["namespace"])] += event["seconds"]
    return {**{f"{p}_s": round(seconds[p], 2) for p in PHASE_NAMES}, "cache_hits": hits, "cache_misses": misses,
            "processes": len(pids)}
