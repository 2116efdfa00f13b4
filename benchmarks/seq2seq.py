"""Throughput of the encoder-decoder Transformer: training and decoding tokens/s, attribution time per token.

Prints one line per measurement (median of ``--repeats`` runs):

* training: target tokens per second of a full step (forward, label-smoothed
  loss, backward, Adam step) on random batches;
* decoding: generated tokens per second of batched greedy decoding and of
  beam search (one sentence at a time), each with the key/value cache (one new
  token through the decoder per step, the default) and without it
  (``use_cache=False``: the whole prefix re-decoded at every step, quadratic),
  the speed-up, and whether the two produce identical tokens;
* attribution: seconds per generated (teacher-forced) target token of every
  seq2seq explanation method.

Defaults are the paper config's Bible model (d_model 128, 3+3 layers, 6k
subword vocabulary, ~32-piece verses), so the numbers say how long notebooks
11-13 take for the ``bible`` task on this machine.

    python benchmarks/seq2seq.py [--device auto] [--d-model 128] [--layers 3] [--vocab 6000] [--length 32]
        [--parts training,decoding,attribution] [--threads N]

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
    parser.add_argument("--decode-sentences", type=int, default=8, help="greedy decoding's batch")
    parser.add_argument("--beam-sentences", type=int, default=2)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--attribution-sentences", type=int, default=8)
    parser.add_argument("--ig-steps", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice); 1 is steadier on a loaded machine")
    parser.add_argument("--parts", default="training,decoding,attribution", help="comma-separated, any of these")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if not parts <= {"training", "decoding", "attribution"}:
        parser.error(f"--parts: unknown {sorted(parts - {'training', 'decoding', 'attribution'})}")

    if args.threads is not None:
        torch.set_num_threads(args.threads)
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

    if "training" in parts:
        _training(model, random_batch(args.batch), device, args)
    if "decoding" in parts:
        _decoding(model, random_batch(max(args.decode_sentences, args.beam_sentences)), device, args)
    if "attribution" in parts:
        _attribution(model, random_batch(args.attribution_sentences), device, args)


def _training(model, batch, device, args) -> None:
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


def _decoding(model, batch, device, args) -> None:
    """Greedy and beam search with and without the key/value cache, EOS masked so every sentence decodes
    ``--length`` tokens."""
    model.eval()
    no_eos = model.generator.register_forward_hook(_no_eos)
    greedy_src, greedy_mask = batch.src[:args.decode_sentences], batch.src_mask[:args.decode_sentences]
    beam_src, beam_mask = batch.src[:args.beam_sentences], batch.src_mask[:args.beam_sentences]
    runs = {"greedy decoding": (lambda cache: model.greedy(greedy_src, greedy_mask, max_len=args.length,
                                                           use_cache=cache), args.decode_sentences,
                                f"batch of {args.decode_sentences}"),
            f"beam search (beam {args.beam})": (lambda cache: model.beam_search(
                beam_src, beam_mask, beam=args.beam, max_len=args.length, use_cache=cache), args.beam_sentences,
                f"{args.beam_sentences} sentences, one at a time")}
    for name, (run, sentences, how) in runs.items():
        same = run(True) == run(False)                                # also the warm-up
        tokens_per_s = {}
        for cache in (False, True):
            t = _median_time(lambda: run(cache), device, args.repeats)
            tokens_per_s[cache] = sentences * args.length / t
        print(f"{name}: {tokens_per_s[True]:,.1f} tokens/s with the key/value cache, {tokens_per_s[False]:,.1f} "
              f"without: {tokens_per_s[True] / tokens_per_s[False]:.1f}x ({how}; identical tokens: {same})")
    no_eos.remove()


def _attribution(model, batch, device, args) -> None:
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
