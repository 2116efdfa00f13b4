"""Synthetic transduction tasks whose word alignments are known by construction.

Each task maps a source token sequence to a target sequence and records, for
every target position, the source position(s) that caused it: the ground
truth for "which source token produced this output token".

* ``copy``     -- target = source; target ``i`` <- source ``i``.
* ``reverse``  -- target = reversed source; target ``i`` <- source ``n-1-i``.
* ``mapping``  -- every source word is translated by a fixed one-to-one
  dictionary (``a3`` -> ``A3``...), and a word of class *adjective* followed by
  one of class *noun* is emitted noun-first (local reordering, like
  English "red house" -> Spanish "casa roja").
* ``date``     -- "5 march 2019" -> "2019 - 03 - 05": year, month and day
  move, the month changes form, the dashes align to nothing.

All examples come from an explicit ``numpy`` generator: one seed, one data set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TASKS = ("copy", "reverse", "mapping", "date")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")


@dataclass(frozen=True)
class TransductionExample:
    source: list[str]
    target: list[str]
    alignment: list[tuple[int, int]]     # (target position, source position), sure links
    # Only for tasks whose tokens are subword pieces of words (the Bible task): the word index of every
    # piece, word-level sure / possible reference links (target word, source word), and the word texts.
    source_word_ids: tuple[int, ...] | None = None
    target_word_ids: tuple[int, ...] | None = None
    word_sure: frozenset | None = None
    word_possible: frozenset | None = None
    source_text: str | None = None
    target_text: str | None = None


def _words(n_nouns: int = 12, n_adjectives: int = 8, n_other: int = 20):
    nouns = [f"n{i}" for i in range(n_nouns)]
    adjectives = [f"a{i}" for i in range(n_adjectives)]
    other = [f"w{i}" for i in range(n_other)]
    return nouns, adjectives, other


def _translate(word: str) -> str:
    return word.upper()


def make_example(task: str, rng: np.random.Generator, min_len: int = 3, max_len: int = 10) -> TransductionExample:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS}")
    if task == "date":
        day, month, year = int(rng.integers(1, 29)), int(rng.integers(1, 13)), int(rng.integers(1950, 2031))
        source = [str(day), MONTHS[month - 1], str(year)]
        target = [str(year), "-", f"{month:02d}", "-", f"{day:02d}"]
        return TransductionExample(source, target, [(0, 2), (2, 1), (4, 0)])
    nouns, adjectives, other = _words()
    vocab = nouns + adjectives + other
    n = int(rng.integers(min_len, max_len + 1))
    source = [vocab[i] for i in rng.integers(0, len(vocab), size=n)]
    if task == "copy":
        return TransductionExample(source, list(source), [(i, i) for i in range(n)])
    if task == "reverse":
        return TransductionExample(source, source[::-1], [(i, n - 1 - i) for i in range(n)])
    # mapping with local reordering: adjective + noun -> NOUN ADJECTIVE
    order, i = [], 0
    while i < n:
        if i + 1 < n and source[i].startswith("a") and source[i + 1].startswith("n"):
            order += [i + 1, i]
            i += 2
        else:
            order.append(i)
            i += 1
    target = [_translate(source[j]) for j in order]
    return TransductionExample(source, target, [(t, s) for t, s in enumerate(order)])


def make_task(task: str, n: int, seed: int, min_len: int = 3, max_len: int = 10) -> list[TransductionExample]:
    """``n`` examples of ``task`` from ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    return [make_example(task, rng, min_len, max_len) for _ in range(n)]
