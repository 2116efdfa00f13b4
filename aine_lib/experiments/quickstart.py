"""The quickstart (notebook 00_quickstart): a Hugging Face classifier as a user would bring one, explained.

No fine-tuned sentiment model is reachable offline, so :func:`sentiment_classifier` gives MiniLM a
classification head and fine-tunes it briefly on the sentiment training split (cached by its
parameters); from then on the model is used exactly as a user's own ``AutoModelForSequenceClassification``.
:func:`eraser_table` scores explanations with the ERASER metrics (comprehensiveness, sufficiency).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aine_lib.attribution import Explanation, as_adapter
from aine_lib.cache import ResultCache
from aine_lib.config import StudyConfig
from aine_lib.data import load_dataset
from aine_lib.evaluation.faithfulness import explanation_faithfulness
from aine_lib.metrics.faithfulness import aopc
from aine_lib.models.hf_training import fine_tune_classifier, predict_classes
from aine_lib.models.pretrained import load_minilm_classifier
from aine_lib.repro import get_device, seed_everything

QUICKSTART_CODE_VERSION = 1


def sentiment_classifier(cfg: StudyConfig, train_examples: int = 2000, seed: int = 0):
    """``(model, tokenizer, info)``: MiniLM (Hugging Face ``BertForSequenceClassification``, eager attention)
    fine-tuned on at most ``train_examples`` sentiment training sentences; ``info`` has its dev accuracy."""
    t = cfg.transformer
    data = load_dataset("sst", cfg)
    train = data.train.sample(n=min(train_examples, len(data.train)), random_state=seed) if train_examples else \
        data.train
    seed_everything(seed)
    model, tokenizer = load_minilm_classifier(cfg.data_root)
    model.to(get_device(cfg.device))
    key = {"texts": list(train["text"]), "labels": [int(x) for x in train["label"]], "epochs": t.minilm_epochs,
           "lr": t.minilm_lr, "batch_size": t.batch_size, "max_length": t.max_length,
           "weight_decay": t.weight_decay, "warmup_fraction": t.warmup_fraction, "seed": seed,
           "precision": t.train_precision, "code_version": QUICKSTART_CODE_VERSION}

    def compute() -> dict:
        losses = fine_tune_classifier(model, tokenizer, key["texts"], key["labels"], epochs=t.minilm_epochs,
                                      lr=t.minilm_lr, batch_size=t.batch_size, max_length=t.max_length,
                                      weight_decay=t.weight_decay, warmup_fraction=t.warmup_fraction, seed=seed,
                                      precision=t.train_precision)
        return {"state": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "losses": losses}

    result = ResultCache(cfg.cache_path).get_or_compute("quickstart_classifier", key, compute)
    model.load_state_dict(result["state"])
    model.eval()
    predicted = predict_classes(model, tokenizer, list(data.dev["text"]), max_length=t.max_length)
    accuracy = float(np.mean(np.asarray(predicted) == data.dev["label"].to_numpy()))
    majority = float(data.dev["label"].value_counts(normalize=True).max())
    return model, tokenizer, {"train_sentences": len(train), "dev_accuracy": accuracy, "dev_majority": majority,
                              "epochs": t.minilm_epochs, "train_loss": result["losses"][-1]}


def scores_frame(explanations: dict[str, Explanation]) -> pd.DataFrame:
    """One row per (sentence, token), one column per method: the scores side by side."""
    frames = [e.to_frame().rename(columns={"score": name}) for name, e in explanations.items()]
    out = frames[0][["example", "position", "token", frames[0].columns[-1]]]
    for f in frames[1:]:
        out = out.merge(f[["example", "position", f.columns[-1]]], on=["example", "position"])
    return out


def eraser_table(model, tokenizer, explanations: dict[str, Explanation],
                 fractions: tuple[float, ...] = (0.1, 0.2, 0.5)) -> pd.DataFrame:
    """AOPC comprehensiveness and sufficiency (ERASER, token removal) of each method on each sentence."""
    adapter = as_adapter(model, tokenizer)
    parts = [explanation_faithfulness(adapter, e, fractions=fractions, modes=("remove",)).assign(method=name)
             for name, e in explanations.items()]
    table = aopc(pd.concat(parts, ignore_index=True))
    return table[["method", "example", "comprehensiveness", "sufficiency"]]


def model_table(info: dict) -> pd.DataFrame:
    """One row: the demonstration model, its training sentences and its dev accuracy against the majority class."""
    return pd.DataFrame([{"model": "all-MiniLM-L6-v2 + classification head (Hugging Face)", **info}])


def eraser_summary(eraser: pd.DataFrame) -> pd.DataFrame:
    """Per method: mean AOPC comprehensiveness and sufficiency over the sentences, best comprehensiveness first."""
    summary = eraser.groupby("method", sort=False)[["comprehensiveness", "sufficiency"]].mean().reset_index()
    summary["n_sentences"] = eraser.groupby("method", sort=False).size().to_numpy()
    return summary.sort_values("comprehensiveness", ascending=False, kind="stable").reset_index(drop=True)
