"""The runtime profile: cache computations timed exclusively of the ones they trigger, hits counted."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

from aine_lib import timing
from aine_lib.cache import ResultCache


def test_nested_computations_are_charged_only_for_their_own_time(tmp_path, monkeypatch):
    clock = itertools.count()                 # a fake clock for timing only: every reading advances one second
    monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter=lambda: float(next(clock))))
    log = tmp_path / "events.jsonl"
    monkeypatch.setenv(timing.LOG_ENV, str(log))
    cache = ResultCache(tmp_path / "cache")

    def outer():
        next(clock), next(clock)                                # the outer work: two seconds of its own
        return cache.get_or_compute("rnn_attributions", {"k": 1}, lambda: [next(clock) for _ in range(5)])

    cache.get_or_compute("rnn_classifiers", {"k": 2}, outer)
    cache.get_or_compute("rnn_classifiers", {"k": 2}, outer)   # a hit: nothing computed
    summary = timing.summarise(log)
    assert summary["cache_misses"] == 2 and summary["cache_hits"] == 1
    # readings: outer starts at 0, works to 2, inner starts at 3, works to 8, ends at 9; outer ends at 10.
    # The inner entry is charged 9 - 3 = 6; the outer only 10 - 0 - 6 = 4, not 10.
    assert summary["attribute_s"] == 6
    assert summary["train_s"] == 4
    assert summary["evaluate_s"] == 0 and summary["data_s"] == 0


def test_nothing_is_logged_without_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(timing.LOG_ENV, raising=False)
    ResultCache(tmp_path / "cache").get_or_compute("x", {"k": 1}, lambda: 1)
    assert timing.summarise(tmp_path / "absent.jsonl")["cache_misses"] == 0
    assert not any(tmp_path.glob("*.jsonl"))


def test_unlisted_namespaces_count_as_evaluation():
    assert timing.phase("transformer_faithfulness") == "evaluate"
    assert timing.phase("seq2seq_models") == "train" and timing.phase("seq2seq_scores") == "attribute"
