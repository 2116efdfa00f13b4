"""A synthetic sentiment task whose deciding tokens are known by construction.

Each example is a string of neutral filler words into which ``k`` keywords of
its class are planted (1 <= k <= ``max_signal_tokens``). With probability
``distractor_prob`` (and k >= 2) up to k-1 keywords of the *other* class are
planted too, so the label is the majority class of the planted keywords and a
model must weigh several tokens. The ground-truth rationale marks the
positions of the majority-class keywords; every other token is irrelevant to
the label by construction. This is the yardstick for plausibility (does an
explanation find the truth?) on every from-scratch and pretrained model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aine_lib.config import PlantedConfig
from aine_lib.data.text import TextClassificationData, tokenize

LABELS = ("negative", "positive")
KEYWORDS = {
    0: ("awful", "boring", "dreadful", "dull", "horrible", "lousy", "mediocre", "painful", "poor",
        "terrible", "tedious", "ugly", "unbearable", "weak", "worst", "annoying"),
    1: ("brilliant", "charming", "delightful", "excellent", "fantastic", "gorgeous", "great", "lovely",
        "moving", "superb", "terrific", "wonderful", "masterful", "stunning", "best", "enjoyable"),
}
FILLER = tuple("""
the a an of to in and or but with on at by for from as is was are were be been this that these those it
its his her their our my your film movie story plot scene scenes actor actors cast director script screen
camera music score ending opening character characters dialogue minute minutes hour time year years
people audience viewer critics studio sequel version book world city night day man woman family friend
house car road war life love way thing things part moment moments first second last new old long short
young little big small other same own such only also just even still again then now here there when
while after before during about into over under between through against without within around
seems feels looks comes goes makes takes gives shows tells plays runs turns tries keeps gets puts
rather quite very really almost often sometimes never always perhaps maybe probably mostly
""".split())


def generate_planted(n: int, cfg: PlantedConfig, seed: int) -> pd.DataFrame:
    """``n`` examples with columns text, tokens, label, rationale (0/1 per token), n_signal, n_distractor."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        label = int(rng.integers(2))
        length = int(rng.integers(cfg.min_length, cfg.max_length + 1))
        n_signal = int(rng.integers(1, cfg.max_signal_tokens + 1))
        n_distractor = 0
        if n_signal >= 2 and rng.random() < cfg.distractor_prob:
            n_distractor = int(rng.integers(1, n_signal))
        tokens = list(rng.choice(FILLER, size=length))
        rationale = [0] * length
        positions = rng.choice(length, size=n_signal + n_distractor, replace=False)
        for j, pos in enumerate(positions):
            cls = label if j < n_signal else 1 - label
            tokens[pos] = str(rng.choice(KEYWORDS[cls]))
            rationale[pos] = int(cls == label)
        rows.append((" ".join(tokens), tokens, label, rationale, n_signal, n_distractor))
    df = pd.DataFrame(rows, columns=["text", "tokens", "label", "rationale", "n_signal", "n_distractor"])
    # The text must tokenise back to the same tokens, or rationales would misalign.
    assert all(tokenize(t) == toks for t, toks in zip(df["text"], df["tokens"]))
    return df


def load_planted(cfg: PlantedConfig) -> TextClassificationData:
    splits = {
        "train": generate_planted(cfg.n_train, cfg, cfg.seed),
        "dev": generate_planted(cfg.n_dev, cfg, cfg.seed + 1),
        "test": generate_planted(cfg.n_test, cfg, cfg.seed + 2),
    }
    return TextClassificationData(
        name="planted",
        label_names=LABELS,
        splits=splits,
        description="synthetic: filler words with planted class keywords (majority decides); rationale known",
        source="generated (aine_lib.data.planted), no download",
    )
