"""BiLSTM encoder speed: our two padded one-directional LSTMs vs a packed nn.LSTM(bidirectional=True).

Both compute the same function (tests/unit/test_rnn_models.py checks outputs and
input gradients). Prints the time of one forward+backward pass on a batch shaped
like 20 Newsgroups (batch 32, lengths up to 500, GloVe-50 inputs, 128 per
direction) and like SST (lengths ~21), and the speed-up.

    python benchmarks/lstm.py [--device auto] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from aine_lib.models.rnn_attention import BiLSTMEncoder
from aine_lib.repro import get_device


def _time(fn, repeats: int, device: torch.device) -> float:
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = get_device(args.device)
    torch.manual_seed(0)
    ours = BiLSTMEncoder(50, 128).to(device)
    packed_lstm = torch.nn.LSTM(50, 128, batch_first=True, bidirectional=True).to(device)
    print(f"device: {device}, threads: {torch.get_num_threads()}")
    for name, low, high in (("20news-like", 60, 500), ("sst-like", 8, 40)):
        lengths = torch.randint(low, high + 1, (32,))
        lengths[0] = high
        T = int(lengths.max())
        mask = (torch.arange(T)[None, :] < lengths[:, None]).to(device)
        x = (torch.randn(32, T, 50, device=device) * mask.unsqueeze(-1)).requires_grad_(True)

        def run_ours():
            ours(x, mask).sum().backward()

        def run_packed():
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = pad_packed_sequence(packed_lstm(packed)[0], batch_first=True, total_length=T)
            out.sum().backward()

        t_ours, t_packed = _time(run_ours, args.repeats, device), _time(run_packed, args.repeats, device)
        print(f"{name:12s} mean length {lengths.float().mean():6.1f}: padded two-pass {t_ours * 1e3:8.1f} ms, "
              f"packed {t_packed * 1e3:8.1f} ms, speed-up {t_packed / t_ours:5.1f}x")


if __name__ == "__main__":
    main()
