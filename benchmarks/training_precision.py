"""Training steps in float32 against bfloat16 autocast (``train_precision``), on the study's own models.

Times ``--steps`` optimiser steps (after two warm-up steps) of
* MiniLM (the study's :class:`TransformerClassifier` with the checkpoint's weights) on batches of 32 real
  SST sentences (~25 wordpieces) and of 32 real 20News posts cut at 128 wordpieces;
* the Bible-sized encoder-decoder (d_model 128, 3+3 layers, vocabulary 6,000) on 64 random pairs of 36/40
  pieces (the Bible verses' typical lengths);
in both precisions, alternating, and prints the seconds per step and the speed-up. A CPU without AMX or
AVX512-BF16 units shows a speed-up below 1: keep ``float32`` there.

    python benchmarks/training_precision.py [--config configs/smoke.yaml] [--steps 5] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from aine_lib.config import load_config
from aine_lib.data import load_dataset
from aine_lib.data.pretrained import minilm_dir, minilm_tokenizer
from aine_lib.models.precision import training_autocast
from aine_lib.models.seq2seq_training import collate_pairs, sequence_loss
from aine_lib.models.transformer import Seq2SeqConfig, Seq2SeqTransformer
from aine_lib.models.transformer_encoder import TransformerClassifier
from aine_lib.repro import seed_everything


def classifier_step(model, optimiser, ids, mask, labels, precision):
    with training_autocast("cpu", precision):
        logits = model(ids, mask).logits
    loss = F.cross_entropy(logits.float(), labels)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()


def seq2seq_step(model, optimiser, batch, precision):
    with training_autocast("cpu", precision):
        out = model(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_mask)
    loss = sequence_loss(out.logits.float(), batch.tgt_out, 0.1)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()


def timed(step, steps: int) -> float:
    step()
    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps


def wordpiece_batch(texts, tokenizer, max_length):
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding()
    enc = tokenizer.encode_batch(list(texts))
    return (torch.tensor([e.ids for e in enc]), torch.tensor([e.attention_mask for e in enc]).bool())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/smoke.yaml")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cfg = load_config(args.config)
    seed_everything(0)
    tokenizer = minilm_tokenizer(cfg.data_root)
    cases = []
    for name, length in (("sst", 128), ("newsgroups", 128)):
        texts = load_dataset(name, cfg).train["text"][:32]
        ids, mask = wordpiece_batch(texts, tokenizer, length)
        model = TransformerClassifier.from_pretrained(minilm_dir(cfg.data_root), n_classes=2).train()
        optimiser = torch.optim.AdamW(model.parameters(), lr=1e-5)
        labels = torch.zeros(len(ids), dtype=torch.long)
        cases.append((f"MiniLM, 32 {name} texts ({tuple(ids.shape)})",
                      lambda p, m=model, o=optimiser, i=ids, k=mask, y=labels: classifier_step(m, o, i, k, y, p)))
    gen = torch.Generator().manual_seed(0)
    pairs = [(torch.randint(3, 6000, (36,), generator=gen).tolist(), torch.randint(3, 6000, (40,), generator=gen).tolist())
             for _ in range(64)]
    batch = collate_pairs([p[0] for p in pairs], [p[1] for p in pairs])
    s2s = Seq2SeqTransformer(Seq2SeqConfig(src_vocab=6000, tgt_vocab=6000, d_model=128, heads=4, encoder_layers=3,
                                           decoder_layers=3, d_ff=512)).train()
    s2s_opt = torch.optim.Adam(s2s.parameters(), lr=1e-4)
    cases.append(("Bible-sized seq2seq, 64 pairs of 36/40 pieces", lambda p: seq2seq_step(s2s, s2s_opt, batch, p)))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps x {args.repeats} repeats")
    for label, step in cases:
        times = {"float32": [], "bfloat16": []}
        for _ in range(args.repeats):
            for precision in times:
                times[precision].append(timed(lambda: step(precision), args.steps))
        f32, b16 = min(times["float32"]), min(times["bfloat16"])
        print(f"{label}: float32 {f32:.3f} s/step, bfloat16 {b16:.3f} s/step: {f32 / b16:.2f}x")


if __name__ == "__main__":
    main()
