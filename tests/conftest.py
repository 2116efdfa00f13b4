"""Shared test setup: no hub access, headless plotting, tiny configs written per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_config(tmp_path):
    """Write a small planted-only config into tmp_path and return its path (no downloads needed)."""
    def make(extra: str = "") -> Path:
        path = tmp_path / "configs" / "tiny.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "name: tiny\n"
            "output_dir: out\n"
            "data:\n"
            "  datasets: [planted]\n"
            "  planted: {n_train: 60, n_dev: 20, n_test: 20, seed: 7}\n" + extra
        )
        return path
    return make
