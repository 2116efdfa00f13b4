"""The study's questions, answered from its own tables.

:func:`answers_markdown` reads the tables one config run wrote (``tables/``
for the paper config) and states, per question of the seed, what they show:
every number is read from a table at build time, never typed in, and every
question whose notebook has not been run yet says so. The book's landing page
(:mod:`aine_lib.study.book`) shows it; ``aine answers`` prints it.

Each bullet names the chapter and table that carry the evidence, so a reader
can check it. The summaries use the primary model of each part (BiLSTM with
additive attention for the RNN part, fine-tuned MiniLM with token removal for
the Transformer part, the softmax model for the encoder-decoder).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from aine_lib.report.evidence import (_decay, _ensembles, _generation, _internal, _rnn_inputs, _scaling_data,
                                      _scaling_models, _transformer_inputs)

QUESTIONS = (
    ("Does attention tell us which inputs matter?",
     lambda t: _rnn_inputs(t) + _transformer_inputs(t) + _ensembles(t)),
    ("Does attention explain the model's internal computation?", _internal),
    ("Does attention explain generation decisions?", _generation),
)


def answers_markdown(tables: str | Path, config_name: str = "", questions=None) -> str:
    """Markdown: each question with the evidence its tables carry (or a pending note)."""
    questions = QUESTIONS if questions is None else questions
    tables = Path(tables)
    lines = []
    if config_name == "smoke":
        lines += ["> These numbers come from the **smoke** config (tiny data, seconds of training): they show "
                  "that the pipeline runs, not what is true. Read the paper-config book for the findings.", ""]
    for i, (question, evidence) in enumerate(questions, start=1):
        lines.append(f"### {i}. {question}")
        lines.append("")
        items = evidence(tables)
        lines += [f"* {item}" for item in items] or ["* *No evidence yet.*"]
        lines.append("")
    return "\n".join(lines)


# ----- the seed's five questions (notebook 15) -----------------------------------------------------------

SEED_QUESTIONS = (
    ("Why did the model produce this output?",
     lambda t: _transformer_inputs(t) + _generation(t)[:1]),
    ("Why do attention distributions and their decay curves not fully explain decisions?",
     lambda t: _rnn_inputs(t) + _internal(t) + _decay(t)),
    ("How can interpretability be improved?",
     lambda t: _generation(t)[1:] + _ensembles(t)),
    ("Which models are more interpretable?", _scaling_models),
    ("How much training data does interpretability need?", _scaling_data),
)

_SOURCE = re.compile(r"chapter (\d\d)[^`]*?`([^`]+\.csv)`")


def evidence_table(tables: str | Path) -> pd.DataFrame:
    """``tables/conclusions.csv``: one row per piece of evidence for each of the seed's five questions --
    question, finding (the sentence, every number read from a table), chapter and table it comes from, and
    ``pending`` when the notebook that would supply it has not been run on this config."""
    tables = Path(tables)
    rows = []
    for i, (question, evidence) in enumerate(SEED_QUESTIONS, start=1):
        for item in evidence(tables):
            match = _SOURCE.search(item)
            pending = item.startswith("*Pending")
            notebook = re.search(r"`(\d\d)_[a-z0-9_]+`", item) if pending else None
            rows.append({"question_number": i, "question": question, "finding": item.replace("**", ""),
                         "chapter": match.group(1) if match else (notebook.group(1) if notebook else ""),
                         "table": match.group(2) if match else "", "pending": pending})
    return pd.DataFrame(rows)


def seed_answers_markdown(tables: str | Path, config_name: str = "") -> str:
    """Markdown of the seed's five questions with their evidence (notebook 15)."""
    return answers_markdown(tables, config_name, questions=SEED_QUESTIONS)
