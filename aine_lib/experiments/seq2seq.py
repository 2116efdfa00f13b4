"""Encoder-decoder Transformer on transduction tasks with known alignments: does cross-attention explain
each generated token?

:class:`Seq2SeqStudy` holds the tasks of ``cfg.seq2seq`` -- the synthetic
transductions with alignments known by construction and, as ``bible``, Bible
English -> Spanish with eflomal reference alignments (:mod:`aine_lib.data.bible_task`)
-- and one trained model per task, variant and seed (cached). Experiments
return tidy DataFrames:

* :func:`performance` -- exact match, token accuracy, BLEU and chrF (sacrebleu,
  BLEU with a bootstrap CI) of greedy decoding (beam search on the Bible) on test;
* :func:`~aine_lib.experiments.seq2seq_alignment.alignment_table` -- alignment error rate (AER) of every
  cross-attention layer and head, of the head mean, and of every explanation method, against
  the gold alignments, with bootstrap CIs over sentences;
* :mod:`aine_lib.experiments.seq2seq_generation` -- attention decay, interventions on generation
  decisions, peakedness and the attention variants.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from aine_lib.cache import ResultCache, params_key
from aine_lib.config import StudyConfig
from aine_lib.data.bible import load_bible_pairs
from aine_lib.data.bible_task import build_bible_task, detokenize, pairs_fingerprint
from aine_lib.data.transduction import TransductionExample, make_task
from aine_lib.models.rnn_attention import MODEL_CODE_VERSION
from aine_lib.models.seq2seq_training import Seq2SeqTrainConfig, TokenVocabulary, collate_pairs, train_seq2seq
from aine_lib.models.training import _load_result, _save_result
from aine_lib.models.transformer import Seq2SeqConfig, Seq2SeqTransformer
from aine_lib.repro import TRAINING_THREADS, get_device, progress_enabled, seed_everything, torch_threads

#: Bumped whenever an analysis of a trained encoder-decoder (the explanation score matrices, LOO, IG, the
#: generation interventions, head ablation) computes something different for the same model and rows; it is
#: part of every such analysis's cache key (:meth:`Seq2SeqStudy.model_key`).
ANALYSIS_CODE_VERSION = 1

EXPLANATIONS = ("cross_attention_mean", "rollout", "norm", "gradient_x_input", "integrated_gradients", "loo")


@dataclass
class TaskData:
    name: str
    splits: dict[str, list[TransductionExample]]
    vocab: TokenVocabulary

    def pairs(self, split: str) -> list[tuple[list[int], list[int]]]:
        return [(self.vocab.encode(e.source), self.vocab.encode(e.target)) for e in self.splits[split]]

    @property
    def subwords(self) -> bool:
        """Tokens are subword pieces of words (the Bible task), with word-level reference alignments."""
        return bool(self.splits["train"]) and self.splits["train"][0].source_word_ids is not None

    def text(self, ids: list[int]) -> str:
        """Token ids -> the text BLEU is computed on (pieces glued back into words for subword tasks)."""
        tokens = self.vocab.decode(ids)
        if self.subwords:
            return detokenize(tokens)
        return " ".join(tokens)


@dataclass(frozen=True)
class TaskSettings:
    """Model, training and decoding sizes of one task (the synthetic tasks share ``cfg.seq2seq``'s; the Bible
    task has its own in ``cfg.seq2seq.bible``)."""

    d_model: int
    heads: int
    encoder_layers: int
    decoder_layers: int
    d_ff: int
    epochs: int
    batch_size: int
    warmup_steps: int
    seeds: tuple[int, ...]
    positions: int          # length of the positional table
    decode_len: int         # longest output decoding may produce
    beam: int               # 1: greedy
    variants: tuple[str, ...] = ("softmax", "entmax15", "supervised")   # the attention variants trained


VARIANTS = ("softmax", "entmax15", "supervised")


@dataclass(frozen=True)
class TrainedSeq2Seq:
    task: str
    seed: int
    model: torch.nn.Module
    history: pd.DataFrame
    best_epoch: int
    variant: str = "softmax"
    #: :func:`aine_lib.cache.params_key` of everything the weights were trained from (task data, model and
    #: training config, seed, model code version); set by :meth:`Seq2SeqStudy.train`
    training_key: str | None = None


class Seq2SeqStudy:
    def __init__(self, cfg: StudyConfig, tasks: tuple[str, ...] | None = None):
        self.cfg = cfg
        s = cfg.seq2seq
        self.tasks = tuple(tasks or s.tasks)
        unknown = set(self.tasks) - set(s.tasks)
        if unknown:
            raise ValueError(f"tasks {sorted(unknown)} are not in seq2seq.tasks {list(s.tasks)}")
        self.device = get_device(cfg.device)
        self.cache = ResultCache(cfg.cache_path)
        self.progress = progress_enabled(cfg)
        self._data: dict[str, TaskData] = {}

    def settings(self, task: str) -> TaskSettings:
        s = self.cfg.seq2seq
        if task == "bible":
            b = s.bible
            return TaskSettings(b.d_model, b.heads, b.encoder_layers, b.decoder_layers, b.d_ff, b.epochs,
                                b.batch_size, b.warmup_steps, tuple(b.seeds), positions=2 * b.max_subwords + 8,
                                decode_len=b.max_subwords + 16, beam=b.beam_size, variants=tuple(b.variants))
        return TaskSettings(s.d_model, s.heads, s.encoder_layers, s.decoder_layers, s.d_ff, s.epochs, s.batch_size,
                            s.warmup_steps, tuple(s.seeds), positions=max(64, 2 * s.max_len + 8),
                            decode_len=2 * s.max_len + 4, beam=1)

    def describe(self) -> str:
        """One line per task: training pairs, model size, seeds, decoding (printed at the top of 11-13)."""
        lines = [f"{self.cfg.name}: device {self.device}"]
        for task in self.tasks:
            k, d = self.settings(task), self.data(task)
            lines.append(f"  {task}: {len(d.splits['train'])} training pairs, vocabulary {len(d.vocab)}, "
                         f"d_model {k.d_model}, {k.encoder_layers}+{k.decoder_layers} layers x {k.heads} heads, "
                         f"{k.epochs} epochs max, seeds {list(k.seeds)}, "
                         f"{'beam ' + str(k.beam) if k.beam > 1 else 'greedy'} decoding")
        return "\n".join(lines)

    def _bible_data(self) -> TaskData:
        """The Bible task, built once per (verse pairs, bible config) and cached: its eflomal references are
        sampled, so every later step must read the same copy."""
        b = self.cfg.seq2seq.bible
        pairs = load_bible_pairs(self.cfg.data_root)
        params = {"pairs": pairs_fingerprint(pairs), "n_train": b.n_train, "n_dev": b.n_dev, "n_test": b.n_test,
                  "max_subwords": b.max_subwords, "vocab_size": b.vocab_size, "split_seed": b.split_seed}
        splits = self.cache.get_or_compute(
            "bible_task", params, lambda: build_bible_task(pairs, n_train=b.n_train, n_dev=b.n_dev, n_test=b.n_test,
                                                          max_subwords=b.max_subwords, vocab_size=b.vocab_size,
                                                          split_seed=b.split_seed))
        vocab = TokenVocabulary.build([e.source for e in splits["train"]] + [e.target for e in splits["train"]])
        return TaskData("bible", splits, vocab)

    def data(self, task: str) -> TaskData:
        if task == "bible" and task not in self._data:
            self._data[task] = self._bible_data()
        if task not in self._data:
            s = self.cfg.seq2seq
            offsets = {"train": 0, "dev": 1, "test": 2}
            sizes = {"train": s.n_train, "dev": s.n_dev, "test": s.n_test}
            splits = {k: make_task(task, sizes[k], seed=s.data_seed * 10 + offsets[k], min_len=s.min_len,
                                   max_len=s.max_len) for k in sizes}
            # dev/test sources also seen in training (frequent for the small date space) are dropped
            seen = {tuple(e.source) for e in splits["train"]}
            for k in ("dev", "test"):
                splits[k] = [e for e in splits[k] if tuple(e.source) not in seen]
            vocab = TokenVocabulary.build([e.source for e in splits["train"]] + [e.target for e in splits["train"]])
            self._data[task] = TaskData(task, splits, vocab)
        return self._data[task]

    def analysis(self, task: str) -> list[TransductionExample]:
        test = self.data(task).splits["test"]
        cap = self.cfg.seq2seq.bible.max_analysis_examples if task == "bible" else self.cfg.seq2seq.max_analysis_examples
        return test if cap is None else test[:cap]

    def train(self, task: str, seed: int, variant: str = "softmax") -> TrainedSeq2Seq:
        """``variant``: ``softmax`` (the paper's model), ``entmax15`` (sparse cross-attention, Peters et al.
        2019) or ``supervised`` (head 0 of the last decoder layer trained to match the gold alignment,
        Garg et al. 2019, weight 1)."""
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")

        s = self.cfg.seq2seq
        k = self.settings(task)
        data = self.data(task)
        model_cfg = Seq2SeqConfig(src_vocab=len(data.vocab), tgt_vocab=len(data.vocab), d_model=k.d_model,
                                  heads=k.heads, encoder_layers=k.encoder_layers, decoder_layers=k.decoder_layers,
                                  d_ff=k.d_ff, dropout=s.dropout, max_len=k.positions,
                                  cross_normaliser="entmax15" if variant == "entmax15" else "softmax")
        train_cfg = Seq2SeqTrainConfig(epochs=k.epochs, batch_size=k.batch_size, warmup_steps=k.warmup_steps,
                                       lr_scale=s.lr_scale, label_smoothing=s.label_smoothing, patience=s.patience,
                                       align_weight=1.0 if variant == "supervised" else 0.0,
                                       precision=s.train_precision)
        train, dev = data.pairs("train"), data.pairs("dev")
        fingerprint = hashlib.sha256(repr((train, dev)).encode()).hexdigest()[:20]
        params = {"task": task, "data": fingerprint, "model": asdict(model_cfg), "train": train_cfg, "seed": seed,
                  "code_version": MODEL_CODE_VERSION, "torch_threads": TRAINING_THREADS}
        seed_everything(seed)
        model = Seq2SeqTransformer(model_cfg).to(self.device)

        alignments = [e.alignment for e in data.splits["train"]]

        # a killed run (the Bible models take hours on 2 CPU cores) resumes from its last finished epoch
        partial = self.cache.partial("seq2seq_models", params, suffix="pt")

        def compute():
            with torch_threads(TRAINING_THREADS):
                return train_seq2seq(model, train, dev, train_cfg, seed, self.device, progress=self.progress,
                                     train_alignments=alignments if variant == "supervised" else None,
                                     checkpoint=partial)

        result = self.cache.get_or_compute("seq2seq_models", params, compute, save=_save_result, load=_load_result,
                                           suffix="pt")
        partial.unlink(missing_ok=True)
        model.load_state_dict(result.state_dict)
        model.eval()
        return TrainedSeq2Seq(task, seed, model, result.history, result.best_epoch, variant,
                              training_key=params_key(params))

    def model_key(self, m: TrainedSeq2Seq) -> dict:
        """Identifies a trained model and the rows it is analysed on, for the analysis caches: the training
        key (so retrained weights, e.g. after the task data changed, are never answered from an old
        analysis), a fingerprint of the analysis examples (sources, targets and alignments), the seq2seq
        config (IG steps, analysis caps) and :data:`ANALYSIS_CODE_VERSION`."""
        if m.training_key is None:
            raise ValueError(f"the {m.task} model (seed {m.seed}, {m.variant}) carries no training_key, so its "
                             "analyses cannot be cached safely; get models from Seq2SeqStudy.train / .models")
        rows = [(e.source, e.target, sorted(e.alignment), e.source_word_ids, e.target_word_ids,
                 None if e.word_sure is None else sorted(e.word_sure),
                 None if e.word_possible is None else sorted(e.word_possible)) for e in self.analysis(m.task)]
        return {"model": [m.task, m.seed, m.variant], "training": m.training_key,
                "rows": hashlib.sha256(repr(rows).encode()).hexdigest()[:20], "n": len(rows),
                "config": self.cfg.seq2seq, "analysis_version": ANALYSIS_CODE_VERSION}

    def models(self, variants: tuple[str, ...] = ("softmax",)):
        """Every trained model of ``variants`` (those the task's settings train), task by task."""
        for task in self.tasks:
            for variant in (v for v in variants if v in self.settings(task).variants):
                for seed in self.settings(task).seeds:
                    yield self.train(task, seed, variant)

    def decode(self, m: "TrainedSeq2Seq", b) -> list[list[int]]:
        """The task's decoding: greedy for the synthetic tasks, beam search (length-normalised) for the Bible."""
        k = self.settings(m.task)
        if k.beam > 1:
            return m.model.beam_search(b.src, b.src_mask, beam=k.beam, max_len=k.decode_len, length_penalty=1.0)
        return m.model.greedy(b.src, b.src_mask, max_len=k.decode_len)


def _train_one(cfg: StudyConfig, task: str, seed: int, variant: str) -> None:
    """One model of :func:`train_grid`, in a worker (the study, and the Bible data, are built once per worker)."""
    if _WORKER_STUDY.get("cfg") != cfg:         # a worker serves one map call, hence one config
        _WORKER_STUDY.update(cfg=cfg, study=Seq2SeqStudy(cfg))
    _WORKER_STUDY["study"].train(task, seed, variant)


_WORKER_STUDY: dict = {}


def train_grid(study: Seq2SeqStudy, executor, variants: tuple[str, ...] = VARIANTS) -> None:
    """Train (into the cache) every model of ``variants`` through ``executor``, the largest first, so the
    notebook's analyses then load them: with one torch thread per model (``repro.TRAINING_THREADS``), two
    workers train two models side by side on 2 cores. The Bible data (and its BPE) is built here first, so
    every worker reads the same cached copy."""
    from dataclasses import replace

    if "bible" in study.tasks:
        study.data("bible")
    portable = replace(study.cfg, notebooks=())
    tasks = [(portable, task, seed, variant) for task in study.tasks
             for variant in variants if variant in study.settings(task).variants
             for seed in study.settings(task).seeds]
    tasks.sort(key=lambda t: t[1] != "bible")          # the Bible models first: the longest runs start first
    executor.map(_train_one, tasks, desc="seq2seq models", progress=study.progress)


def _batches(pairs, batch_size=64):
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        yield start, collate_pairs([s for s, _ in chunk], [t for _, t in chunk])


def performance(study: Seq2SeqStudy, variants: tuple[str, ...] = ("softmax",)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per model: exact match, token accuracy, BLEU on test; a few example outputs per task)."""
    import sacrebleu

    rows, examples = [], []
    for m in study.models(variants):
        data = study.data(m.task)
        pairs = data.pairs("test")
        hyps = []
        for _, b in _batches(pairs, 128):
            b = b.to(study.device)
            hyps += study.decode(m, b)
        refs = [t for _, t in pairs]
        exact = float(np.mean([h == r for h, r in zip(hyps, refs)]))
        # position-wise over the longer of output and reference: missing or extra tokens count as wrong
        token_acc = float(np.mean([sum(a == b for a, b in zip(h, r)) / max(len(h), len(r), 1)
                                   for h, r in zip(hyps, refs)]))
        hyp_text = [data.text(h) for h in hyps]
        if data.subwords:
            # words as split by the task (punctuation separate), sacrebleu's standard 13a tokenisation on top
            ref_text = [e.target_text for e in data.splits["test"]]
            bleu = sacrebleu.corpus_bleu(hyp_text, [ref_text])
            chrf = sacrebleu.corpus_chrf(hyp_text, [ref_text]).score
        else:
            ref_text = [data.text(r) for r in refs]
            bleu = sacrebleu.corpus_bleu(hyp_text, [ref_text], tokenize="none")
            chrf = sacrebleu.corpus_chrf(hyp_text, [ref_text]).score
        low, high = _bleu_ci(hyp_text, ref_text, data.subwords, seed=m.seed)
        rows.append({"task": m.task, "variant": m.variant, "seed": m.seed, "best_epoch": m.best_epoch,
                     "exact_match": exact,
                     "token_accuracy": token_acc, "bleu": bleu.score, "bleu_ci_low": low, "bleu_ci_high": high,
                     "chrf": chrf, "n_test": len(refs),
                     "train_seconds": float(m.history["seconds"].sum())})
        for i in range(3):
            e = data.splits["test"][i]
            examples.append({"task": m.task, "source": e.source_text or " ".join(e.source),
                             "reference": ref_text[i], "output": hyp_text[i]})
    return pd.DataFrame(rows), pd.DataFrame(examples)


def _bleu_ci(hyps: list[str], refs: list[str], subwords: bool, seed: int, n_boot: int = 200
             ) -> tuple[float, float]:
    """95% bootstrap interval of corpus BLEU over test sentences (resampled with replacement)."""
    import sacrebleu

    rng = np.random.default_rng(seed)
    kwargs = {} if subwords else {"tokenize": "none"}
    stats = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(refs), len(refs))
        stats.append(sacrebleu.corpus_bleu([hyps[i] for i in idx], [[refs[i] for i in idx]], **kwargs).score)
    lo, hi = np.quantile(stats, [0.025, 0.975])
    return float(lo), float(hi)
