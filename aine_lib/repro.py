"""Reproducibility core: seeds, devices and explicit random generators.

Randomness in aine flows through an explicit seed or ``torch.Generator``;
``seed_everything`` exists for the libraries we do not control (e.g. weight
initialisation inside ``torch.nn`` modules).
"""

from __future__ import annotations

import contextlib
import os
import random
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from aine_lib.config import StudyConfig

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) and ask torch for deterministic kernels."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        # Needed by cuBLAS for deterministic matmuls; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


#: torch threads every RNN and seq2seq training run uses, whatever the process has: its weights are then the
#: same bit for bit in a serial run, a process-pool worker and a Ray task (torch's CPU kernels sum in a
#: different order with another thread count). Parallelism comes from training models side by side
#: (``train_grid`` of the experiments); these small models gain little from a second thread (1.2-1.4x).
TRAINING_THREADS = 1


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch threads, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def get_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if name not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {DEVICE_CHOICES}, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "device 'cuda' was requested but no CUDA GPU is visible to torch; "
            "set `device: auto` (or cpu) in the config"
        )
    return torch.device(name)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator seeded explicitly, for sampling that must not touch global state."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def numpy_rng(seed: int) -> np.random.Generator:
    """A NumPy Generator seeded explicitly."""
    return np.random.default_rng(seed)


def describe_device(device: torch.device) -> str:
    """A human-readable device description for manifests."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})"


def progress_enabled(cfg: StudyConfig) -> bool:
    """Progress bars unless the config turns them off or we run under CI."""
    return cfg.progress and not os.environ.get("CI")
