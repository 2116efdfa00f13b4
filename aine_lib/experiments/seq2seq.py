"""Encoder-decoder Transformer on transduction tasks with known alignments: does cross-attention explain
each generated token?

:class:`Seq2SeqStudy` holds the tasks of ``cfg.seq2seq`` -- the synthetic
transductions with alignments known by construction and, as ``bible``, Bible
English -> Spanish with eflomal reference alignments (:mod:`aine_lib.data.bible_task`)
-- and one trained model per task, variant and seed (cached). Experiments
return tidy DataFrames:

* :func:`performance` -- exact match, token accuracy, BLEU and chrF (sacrebleu,
  BLEU with a bootstrap CI) of greedy decoding (beam search on the Bible) on test;
* :func:`alignment_table` -- alignment error rate (AER) of every cross-attention
  layer and head, of the head mean, and of every explanation method, against
  the gold alignments, with bootstrap CIs over sentences.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from aine_lib.config import StudyConfig
from aine_lib.data.transduction import TransductionExample, make_task
from aine_lib.driver import progress_enabled
from aine_lib.io import ResultCache, params_key
from aine_lib.metrics.alignment import alignment_from_scores, corpus_aer
from aine_lib.models.rnn_attention import MODEL_CODE_VERSION
from aine_lib.models.seq2seq_training import TokenVocabulary, collate_pairs
from aine_lib.repro import get_device, seed_everything

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
            from aine_lib.data.bible_task import detokenize
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


VARIANTS = ("softmax", "entmax15", "supervised")


@dataclass(frozen=True)
class TrainedSeq2Seq:
    task: str
    seed: int
    model: torch.nn.Module
    history: pd.DataFrame
    best_epoch: int
    variant: str = "softmax"
    #: :func:`aine_lib.io.params_key` of everything the weights were trained from (task data, model and
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
                                decode_len=b.max_subwords + 16, beam=b.beam_size)
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
        from aine_lib.data.bible import load_bible_pairs
        from aine_lib.data.bible_task import build_bible_task, pairs_fingerprint

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
        from aine_lib.models.seq2seq_training import Seq2SeqTrainConfig, train_seq2seq
        from aine_lib.models.training import _load_result, _save_result
        from aine_lib.models.transformer import Seq2SeqConfig, Seq2SeqTransformer

        s = self.cfg.seq2seq
        k = self.settings(task)
        data = self.data(task)
        model_cfg = Seq2SeqConfig(src_vocab=len(data.vocab), tgt_vocab=len(data.vocab), d_model=k.d_model,
                                  heads=k.heads, encoder_layers=k.encoder_layers, decoder_layers=k.decoder_layers,
                                  d_ff=k.d_ff, dropout=s.dropout, max_len=k.positions,
                                  cross_normaliser="entmax15" if variant == "entmax15" else "softmax")
        train_cfg = Seq2SeqTrainConfig(epochs=k.epochs, batch_size=k.batch_size, warmup_steps=k.warmup_steps,
                                       lr_scale=s.lr_scale, label_smoothing=s.label_smoothing, patience=s.patience,
                                       align_weight=1.0 if variant == "supervised" else 0.0)
        train, dev = data.pairs("train"), data.pairs("dev")
        fingerprint = hashlib.sha256(repr((train, dev)).encode()).hexdigest()[:20]
        params = {"task": task, "data": fingerprint, "model": asdict(model_cfg), "train": train_cfg, "seed": seed,
                  "code_version": MODEL_CODE_VERSION}
        seed_everything(seed)
        model = Seq2SeqTransformer(model_cfg).to(self.device)

        alignments = [e.alignment for e in data.splits["train"]]

        # a killed run (the Bible models take hours on 2 CPU cores) resumes from its last finished epoch
        partial = self.cache.partial("seq2seq_models", params, suffix="pt")

        def compute():
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
        for task in self.tasks:
            for variant in variants:
                for seed in self.settings(task).seeds:
                    yield self.train(task, seed, variant)

    def decode(self, m: "TrainedSeq2Seq", b) -> list[list[int]]:
        """The task's decoding: greedy for the synthetic tasks, beam search (length-normalised) for the Bible."""
        k = self.settings(m.task)
        if k.beam > 1:
            return m.model.beam_search(b.src, b.src_mask, beam=k.beam, max_len=k.decode_len, length_penalty=1.0)
        return m.model.greedy(b.src, b.src_mask, max_len=k.decode_len)


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


def _aer_with_ci(pred: list[set], gold: list[set], seed: int, n_boot: int = 1000,
                 possible: list[set] | None = None) -> tuple[float, float, float]:
    value = corpus_aer(pred, gold, possible)
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(gold), len(gold))
        stats.append(corpus_aer([pred[i] for i in idx], [gold[i] for i in idx],
                                None if possible is None else [possible[i] for i in idx]))
    lo, hi = np.quantile(stats, [0.025, 0.975])
    return value, float(lo), float(hi)


def score_matrices(study: Seq2SeqStudy, m: TrainedSeq2Seq) -> dict[str, list[np.ndarray]]:
    """Per explanation (and per cross-attention layer/head): one ``[T, S]`` matrix per analysis example
    (teacher-forced on the reference target; rows = target tokens, EOS step dropped). Cached."""
    from aine_lib.attribution.seq2seq import explain

    data = study.data(m.task)
    examples = study.analysis(m.task)
    pairs = [(data.vocab.encode(e.source), data.vocab.encode(e.target)) for e in examples]
    key = study.model_key(m)

    def compute() -> dict[str, list[np.ndarray]]:
        out: dict[str, list[np.ndarray]] = {}
        cfg = m.model.cfg
        for start, b in _batches(pairs, 32):
            b = b.to(study.device)
            results = {name: explain(m.model, b, name, **({"n_steps": study.cfg.seq2seq.ig_steps}
                                                           if name == "integrated_gradients" else {}))
                       for name in EXPLANATIONS}
            for layer in range(cfg.decoder_layers):
                for head in range(cfg.heads):
                    results[f"cross L{layer + 1} H{head}"] = explain(m.model, b, "cross_attention", layer=layer,
                                                                    head=head)
                results[f"cross L{layer + 1} mean"] = explain(m.model, b, "cross_attention", layer=layer)
            for i in range(len(b)):
                src_len, tgt_len = len(pairs[start + i][0]), len(pairs[start + i][1])
                for name, r in results.items():
                    out.setdefault(name, []).append(r[i, :tgt_len, :src_len].detach().cpu().numpy())
        return out

    return study.cache.get_or_compute("seq2seq_scores", key, compute)


def alignment_table(study: Seq2SeqStudy, seed: int = 0, variants: tuple[str, ...] = ("softmax",)) -> pd.DataFrame:
    """``tables/alignment.csv``: corpus AER (bootstrap CI over sentences) of each method vs the gold alignment.

    Only target tokens that have a gold link are scored (the question is
    "which source token produced this output token" for tokens that have
    one), and each gets exactly one predicted link, so on the synthetic tasks
    (one gold link per token, ``P = S``) AER equals 1 - top-1 accuracy of the
    link. On the Bible task the scoring is at word level, as is usual for
    subword models (e.g. Garg et al. 2019): each score matrix is pooled to
    words (source pieces summed, target pieces averaged) and compared with
    the eflomal references (sure = intersection, possible = union of the two
    directions). Signed methods are read by their value (the source token
    that most raised ``log p(y_t)``); a random matrix gives the floor.
    """
    rows = []
    for m in study.models(variants):
        examples = study.analysis(m.task)
        words = study.data(m.task).subwords
        if words:
            from aine_lib.data.bible_task import pool_to_words

            gold = [set(e.word_sure) for e in examples]
            possible = [set(e.word_possible) for e in examples]
        else:
            gold, possible = [set(e.alignment) for e in examples], None
        aligned_rows = [sorted({t for t, _ in g}) for g in gold]
        matrices = score_matrices(study, m)
        rng = np.random.default_rng(seed)
        matrices = dict(matrices) | {"random": [rng.random(x.shape) for x in next(iter(matrices.values()))]}
        for name, mats in matrices.items():
            if words:
                mats = [pool_to_words(x, e.source_word_ids, e.target_word_ids) for x, e in zip(mats, examples)]
            pred = [alignment_from_scores(x, r) for x, r in zip(mats, aligned_rows)]
            value, lo, hi = _aer_with_ci(pred, gold, seed, possible=possible)
            kind = "cross-attention head" if name.startswith("cross L") else "method"
            rows.append({"task": m.task, "variant": m.variant, "seed": m.seed, "method": name, "kind": kind,
                         "aer": value, "ci_low": lo,
                         "ci_high": hi, "n_sentences": len(gold)})
    return pd.DataFrame(rows)


# ----- 13: generation decisions ---------------------------------------------------------------------

def _generated_pairs(study: Seq2SeqStudy, m: TrainedSeq2Seq) -> tuple[list[tuple[list[int], list[int]]], list[int]]:
    """(source ids, the model's own greedy output) for the analysis examples, empty outputs dropped,
    and each kept pair's index in ``study.analysis`` (the same sentence across seeds and variants)."""
    data = study.data(m.task)
    sources = [data.vocab.encode(e.source) for e in study.analysis(m.task)]
    out, index = [], []
    for start in range(0, len(sources), 64):
        chunk = sources[start:start + 64]
        b = collate_pairs(chunk, [[3]] * len(chunk)).to(study.device)
        hyps = m.model.greedy(b.src, b.src_mask, max_len=study.settings(m.task).decode_len)
        for j, (src, hyp) in enumerate(zip(chunk, hyps)):
            if hyp:
                out.append((src, hyp))
                index.append(start + j)
    return out, index


def decay_curves(study: Seq2SeqStudy, max_distance: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cross-attention mass by signed distance from the gold-aligned source token, per layer;
    entropy of cross-attention by layer and target position), teacher-forced on the references."""
    mass_rows, entropy_rows = [], []
    for m in study.models():
        data = study.data(m.task)
        examples = study.analysis(m.task)
        pairs = [(data.vocab.encode(e.source), data.vocab.encode(e.target)) for e in examples]
        for start, b in _batches(pairs, 64):
            b = b.to(study.device)
            with torch.no_grad():
                cross = m.model(b.src, b.src_mask, b.tgt_in, b.tgt_mask).attentions["cross"]
            for layer, a in enumerate(cross):
                a = a.mean(1).cpu().numpy()                                     # [B, T, S]
                for i in range(a.shape[0]):
                    ex = examples[start + i]
                    S, T = len(ex.source), len(ex.target) + 1
                    row = a[i, :T, :S]
                    ent = -(row * np.log(np.clip(row, 1e-12, None))).sum(-1)
                    for t in range(T):
                        entropy_rows.append({"task": m.task, "seed": m.seed, "layer": layer + 1, "position": t,
                                             "entropy": float(ent[t]), "max_entropy": float(np.log(S))})
                    for t, s_star in ex.alignment:
                        for d in range(-max_distance, max_distance + 1):
                            s = s_star + d
                            if 0 <= s < S:
                                mass_rows.append({"task": m.task, "seed": m.seed, "layer": layer + 1,
                                                  "distance": d, "mass": float(row[t, s])})
    mass = pd.DataFrame(mass_rows).groupby(["task", "seed", "layer", "distance"], as_index=False)["mass"].mean()
    entropy = pd.DataFrame(entropy_rows).groupby(["task", "seed", "layer", "position"], as_index=False)[
        ["entropy", "max_entropy"]].mean()
    return mass, entropy


def _permute_rows(probs: torch.Tensor, key_mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Shuffle each attention row's weights among the real source positions (every head and step)."""
    from aine_lib.interventions import permute_attention

    B, h, T, S = probs.shape
    flat = probs.reshape(B * h * T, S)
    mask = key_mask[:, None, None, :].expand(B, h, T, S).reshape(B * h * T, S)
    flat = flat / flat.sum(-1, keepdim=True)
    return permute_attention(flat, mask, 1, generator)[0].reshape(B, h, T, S)


def generation_interventions(study: Seq2SeqStudy, n_permutations: int = 10, seed: int = 0,
                             variants: tuple[str, ...] = ("softmax",)) -> pd.DataFrame:
    """Per generated token (teacher-forced on the model's own greedy output):

    * ``permutation``: share of permutations of *all* cross-attention rows that
      change the token, and the median TVD of the output distribution;
    * ``erase_top_attention`` / ``erase_top_head0`` / ``erase_top_ig`` / ``erase_top_loo`` /
      ``erase_random``: drop in log p(token) when the source token with the
      largest last-layer cross-attention (head mean / head 0, the head the
      ``supervised`` variant trains on alignments) / IG score / LOO effect / a
      random one is removed.

    ``example`` is the sentence's index in ``study.analysis`` (shared by seeds
    and variants, so CIs can resample sentences).
    """
    return pd.concat([_model_interventions(study, m, n_permutations, seed) for m in study.models(variants)],
                     ignore_index=True)


def _model_interventions(study: Seq2SeqStudy, m: TrainedSeq2Seq, n_permutations: int, seed: int) -> pd.DataFrame:
    """One model's rows of :func:`generation_interventions`, cached per model (IG over every generated step of
    the Bible test verses takes minutes per model on a CPU, and notebook 13 asks for the softmax models twice)."""
    key = study.model_key(m) | {"n_permutations": n_permutations, "seed": seed}
    return study.cache.get_or_compute("seq2seq_interventions", key,
                                      lambda: _compute_model_interventions(study, m, n_permutations, seed))


def _compute_model_interventions(study: Seq2SeqStudy, m: TrainedSeq2Seq, n_permutations: int,
                                 seed: int) -> pd.DataFrame:
    from aine_lib.attribution.seq2seq import integrated_gradients, leave_one_out
    from aine_lib.metrics.divergence import total_variation
    from aine_lib.repro import make_generator

    rows = []
    pairs, index = _generated_pairs(study, m)
    gen = make_generator(seed)
    rng = np.random.default_rng(seed)
    for start, b in _batches(pairs, 32):
        b = b.to(study.device)
        with torch.no_grad():
            out = m.model(b.src, b.src_mask, b.tgt_in, b.tgt_mask)
            probs = torch.softmax(out.logits, -1)
            tokens = probs.argmax(-1)
            changed = torch.zeros_like(tokens, dtype=torch.float)
            tvds = []
            for _ in range(n_permutations):
                perm = m.model(b.src, b.src_mask, b.tgt_in, b.tgt_mask,
                               cross_transform=lambda layer, p: _permute_rows(p, b.src_mask, gen))
                p2 = torch.softmax(perm.logits, -1)
                changed += (p2.argmax(-1) != tokens).float() / n_permutations
                tvds.append(total_variation(p2, probs))
            tvd = torch.stack(tvds).median(0).values
            attention = out.attentions["cross"][-1].mean(1)                  # [B, T, S]
            head0 = out.attentions["cross"][-1][:, 0]
        loo = leave_one_out(m.model, b)                                        # [B, T, S] log p drop
        ig, _ = integrated_gradients(m.model, b, n_steps=study.cfg.seq2seq.ig_steps)
        for i in range(len(b)):
            S = int(b.src_mask[i].sum())
            T = int(b.tgt_mask[i].sum())
            for t in range(T - 1):                                             # generated tokens, EOS step left out
                top_att = int(attention[i, t, :S].argmax())
                top_h0 = int(head0[i, t, :S].argmax())
                top_ig = int(ig[i, t, :S].argmax())
                top_loo = int(loo[i, t, :S].argmax())
                r = int(rng.integers(0, S))
                rows.append({"task": m.task, "variant": m.variant, "seed": m.seed,
                             "example": index[start + i], "step": t,
                             "permutation_change_rate": float(changed[i, t]),
                             "permutation_tvd": float(tvd[i, t]),
                             "erase_top_attention": float(loo[i, t, top_att]),
                             "erase_top_head0": float(loo[i, t, top_h0]),
                             "erase_top_ig": float(loo[i, t, top_ig]),
                             "erase_top_loo": float(loo[i, t, top_loo]),
                             "erase_random": float(loo[i, t, r]),
                             "attention_max": float(attention[i, t, :S].max()),
                             "top_attention_is_top_loo": top_att == top_loo,
                             "top_head0_is_top_loo": top_h0 == top_loo})
    return pd.DataFrame(rows)


def faithfulness_table(per_step: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``tables/seq2seq_faithfulness.csv``: task, intervention, value (mean over generated tokens), CI, n."""
    from aine_lib.metrics.bootstrap import cluster_bootstrap_ci

    metrics = ["permutation_change_rate", "permutation_tvd", "erase_top_attention", "erase_top_head0",
               "erase_top_ig", "erase_top_loo", "erase_random", "top_attention_is_top_loo", "top_head0_is_top_loo"]
    rows = []
    if "variant" not in per_step:
        per_step = per_step.assign(variant="softmax")
    for (task, variant), g in per_step.groupby(["task", "variant"], sort=False):
        clusters = g["example"].to_numpy()        # a sentence with all its seeds is one cluster
        for metric in metrics:
            v = g[metric].astype(float).to_numpy()
            lo, hi = cluster_bootstrap_ci(v, clusters, seed=seed)
            rows.append({"task": task, "variant": variant, "metric": metric, "value": float(v.mean()), "ci_low": lo,
                         "ci_high": hi,
                         "n_tokens": len(v), "n_sentences": len(set(clusters))})
    return pd.DataFrame(rows)


PEAKEDNESS_BINS = (0.0, 0.4, 0.6, 0.8, 1.0)


def peakedness_table(per_step: pd.DataFrame, bins: tuple[float, ...] = PEAKEDNESS_BINS,
                     seed: int = 0) -> pd.DataFrame:
    """``tables/seq2seq_peakedness.csv``: is attention a better explanation of the steps where it is peaked?

    Generated tokens are binned by the largest last-layer mean cross-attention weight of their step
    (``attention_max``, which a reader of the attention map sees). Per task, variant and bin: how often the
    most-attended source token is the one whose removal hurts most, the permutation change rate, the drop in
    log p when the most-attended token is erased and the largest single-token drop (LOO), each with a CI that
    resamples sentences, and the bin's share of the steps.

    Bins are closed on the right (``[0, 0.4], (0.4, 0.6], ...``): a weight on an edge goes to the lower bin.
    A bin without steps gets no row. ``attention_max`` outside [0, 1], or missing, is an error: it would
    otherwise drop out of every bin and leave the shares summing to less than 1."""
    from aine_lib.metrics.bootstrap import cluster_bootstrap_ci

    if len(bins) < 2 or list(bins) != sorted(set(bins)) or bins[0] < 0.0 or bins[-1] > 1.0:
        raise ValueError(f"bins {bins} must be increasing edges within [0, 1], e.g. {PEAKEDNESS_BINS}")
    weights = per_step["attention_max"].to_numpy(dtype=float)
    if np.isnan(weights).any() or (weights < 0).any() or (weights > 1).any():
        raise ValueError("attention_max must be a weight in [0, 1] for every step; recompute the interventions "
                         "with seq2seq.generation_interventions")
    if "variant" not in per_step:
        per_step = per_step.assign(variant="softmax")
    metrics = ("top_attention_is_top_loo", "permutation_change_rate", "erase_top_attention", "erase_top_loo")
    rows = []
    for (task, variant), g in per_step.groupby(["task", "variant"], sort=False):
        # the lowest edge is included, so a weight equal to bins[0] is not dropped
        binned = pd.cut(g["attention_max"], list(bins), include_lowest=True, labels=False)
        for i, b in g.groupby(binned, sort=True):
            row = {"task": task, "variant": variant, "attention_max_low": bins[int(i)],
                   "attention_max_high": bins[int(i) + 1], "n_tokens": len(b),
                   "share_of_steps": len(b) / len(g), "n_sentences": int(b["example"].nunique())}
            for metric in metrics:
                v = b[metric].astype(float).to_numpy()
                lo, hi = cluster_bootstrap_ci(v, b["example"].to_numpy(), seed=seed)
                row |= {metric: float(v.mean()), f"{metric}_ci_low": lo, f"{metric}_ci_high": hi}
            rows.append(row)
    return pd.DataFrame(rows)


def variants_table(study: Seq2SeqStudy, seed: int = 0, n_permutations: int = 10) -> pd.DataFrame:
    """``tables/seq2seq_variants.csv``: does sparse or alignment-supervised cross-attention become a more
    faithful explanation, and at what cost? Per task and variant: exact match and BLEU, AER of the last
    layer's mean cross-attention and of its head 0 (the supervised head), the permutation change rate and
    the drop in log p(token) when erasing the most-attended source token vs the LOO-best one."""
    perf, _ = performance(study, variants=VARIANTS)
    aer = alignment_table(study, seed=seed, variants=VARIANTS)
    per_step = generation_interventions(study, n_permutations=n_permutations, seed=seed, variants=VARIANTS)
    faith = faithfulness_table(per_step, seed=seed)
    rows = []
    for (task, variant), g in perf.groupby(["task", "variant"], sort=False):
        a = aer[(aer["task"] == task) & (aer["variant"] == variant)].groupby("method")["aer"].mean()
        last = study.settings(task).decoder_layers
        f = faith[(faith["task"] == task) & (faith["variant"] == variant)].set_index("metric") \
            if len(faith) else pd.DataFrame()

        def get(metric: str, column: str = "value") -> float:
            # a model that generated nothing on the analysis rows has no per-token measurements
            return float(f.loc[metric, column]) if metric in f.index else np.nan

        rows.append({"task": task, "variant": variant, "exact_match": g["exact_match"].mean(),
                     "bleu": g["bleu"].mean(), "n_seeds": len(g),
                     "aer_cross_last_mean": a.get(f"cross L{last} mean", np.nan),
                     "aer_cross_last_head0": a.get(f"cross L{last} H0", np.nan),
                     "aer_integrated_gradients": a.get("integrated_gradients", np.nan),
                     "permutation_change_rate": get("permutation_change_rate"),
                     "permutation_change_ci_low": get("permutation_change_rate", "ci_low"),
                     "permutation_change_ci_high": get("permutation_change_rate", "ci_high"),
                     "erase_top_attention": get("erase_top_attention"),
                     "erase_top_attention_ci_low": get("erase_top_attention", "ci_low"),
                     "erase_top_attention_ci_high": get("erase_top_attention", "ci_high"),
                     "erase_top_head0": get("erase_top_head0"),
                     "erase_top_loo": get("erase_top_loo"),
                     "top_attention_is_top_loo": get("top_attention_is_top_loo"),
                     "top_head0_is_top_loo": get("top_head0_is_top_loo")})
    return pd.DataFrame(rows)
