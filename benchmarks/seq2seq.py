"""Throughput of the encoder-decoder Transformer: training and decoding tokens/s, attribution time per token.

Prints one line per measurement (median of ``--repeats`` runs):

* training: target tokens per second of a full step (forward, label-smoothed
  loss, backward, Adam step) on random batches;
* decoding: generated tokens per second of batched greedy decoding and of
  beam search (per sentence, no key/value cache: the prefix is re-decoded at
  every step, the readable but quadratic way);
* attribution: seconds per generated (teacher-forced) target token of every
  seq2seq explanation method.

Defaults are the paper config's Bible model (d_model 128, 3+3 layers, 6k
subword vocabulary, ~32-piece verses), so the numbers say how long notebooks
11-13 take for the ``bible`` task on this machine.

    python benchmarks/seq2seq.py [--device auto] [--d-model 128] [--layers 3] [--vocab 6000] [--length 32]

The weights are random (timing does not depend on them); random models emit
EOS at random, so decoding is forced to its full length by masking EOS.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from aine_lib.attribution import get_method
from aine_lib.models.seq2seq_training import collate_pairs, sequence_loss
from aine_lib.models.transformer import EOS, Seq2SeqConfig, Seq2SeqTransformer
from aine_lib.repro import describe_device, get_device, seed_everything


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_time(fn, device, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=3, help="encoder and decoder layers each")
    parser.add_argument("--d-ff", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=6000)
    parser.add_argument("--length", type=int, default=32, help="source and target pieces per sentence")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--decode-sentences", type=int, default=8)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--attribution-sentences", type=int, default=8)
    parser.add_argument("--ig-steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    device = get_device(args.device)
    seed_everything(0)
    cfg = Seq2SeqConfig(src_vocab=args.vocab, tgt_vocab=args.vocab, d_model=args.d_model, heads=args.heads,
                        encoder_layers=args.layers, decoder_layers=args.layers, d_ff=args.d_ff,
                        max_len=2 * args.length + 8)
    model = Seq2SeqTransformer(cfg).to(device)
    print(f"device: {describe_device(device)}; model d_model {args.d_model}, {args.layers}+{args.layers} layers x "
          f"{args.heads} heads, vocabulary {args.vocab}, {args.length}-piece sentences")

    def random_batch(n: int):
        ids = torch.randint(4, args.vocab, (n, args.length)).tolist()
        return collate_pairs(ids, ids).to(device)

    # training
    batch = random_batch(args.batch)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    tokens = int(batch.tgt_mask.sum())

    def train_step():
        model.train()
        out = model(batch.src, batch.src_mask, batch.tgt_in, batch.tgt_mask)
        loss = sequence_loss(out.logits, batch.tgt_out, 0.1)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    train_step()                                                     # warm-up
    t = _median_time(train_step, device, args.repeats)
    print(f"training: {tokens / t:,.0f} target tokens/s ({t:.3f} s per batch of {args.batch})")

    # decoding, EOS masked so every sentence decodes the full length
    model.eval()
    decode = random_batch(args.decode_sentences)
    no_eos = model.generator.register_forward_hook(_no_eos)
    t = _median_time(lambda: model.greedy(decode.src, decode.src_mask, max_len=args.length), device, args.repeats)
    print(f"greedy decoding: {args.decode_sentences * args.length / t:,.0f} tokens/s "
          f"(batch of {args.decode_sentences})")
    t = _median_time(lambda: model.beam_search(decode.src[:2], decode.src_mask[:2], beam=args.beam,
                                               max_len=args.length), device, 1)
    print(f"beam search (beam {args.beam}): {2 * args.length / t:,.1f} tokens/s (one sentence at a time)")
    no_eos.remove()

    # attribution per generated token
    batch = random_batch(args.attribution_sentences)
    tokens = int(batch.tgt_mask.sum())
    for method in ("cross_attention_mean", "rollout", "norm", "gradient_x_input", "integrated_gradients", "loo"):
        kwargs = {"n_steps": args.ig_steps} if method == "integrated_gradients" else {}
        t = _median_time(lambda: get_method(method, model, **kwargs).attribute(batch, None), device, args.repeats)
        print(f"attribution {method:>22}: {1e3 * t / tokens:8.3f} ms per target token")


def _no_eos(_module, _inputs, logits: torch.Tensor) -> torch.Tensor:
    """Forward hook on the output projection: EOS impossible, so decoding runs to its length limit."""
    logits = logits.clone()
    logits[..., EOS] = -1e4
    return logits


if __name__ == "__main__":
    main()
