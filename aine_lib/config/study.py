"""The whole study config: :class:`StudyConfig`, its sections, its notebooks and its resolved paths.

Relative paths in a config are resolved against ``project_root``, which is itself relative to the
directory holding the config file (default ``..``, so ``configs/x.yaml`` resolves against the repository
root). The data cache directory can be overridden with the ``AINE_DATA_DIR`` environment variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aine_lib.config.errors import ConfigError, did_you_mean
from aine_lib.config.scaling import ScalingConfig
from aine_lib.config.schema import (
    CounterStudyConfig,
    DataConfig,
    InternalsConfig,
    RNNStudyConfig,
    Seq2SeqStudyConfig,
    TransformerStudyConfig,
)

DATA_DIR_ENV = "AINE_DATA_DIR"

DeviceName = Literal["auto", "cpu", "cuda"]
ExecutorName = Literal["local", "ray"]


@dataclass(frozen=True)
class NotebookConfig:
    """One notebook of the study and the parameters papermill injects into it."""

    name: str
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.endswith(".ipynb"):
            raise ConfigError(
                f"notebooks[].name must be a bare notebook name such as '00_data' "
                f"(no folder, no .ipynb), got {self.name!r}"
            )
        reserved = {"config", "overrides"} & set(self.parameters)
        if reserved:
            raise ConfigError(
                f"notebooks[{self.name}].parameters may not set {sorted(reserved)}: "
                "the driver injects those itself"
            )


@dataclass(frozen=True)
class StudyConfig:
    """One run of the study: where outputs go, which notebooks, which data."""

    name: str
    seed: int = 0
    device: DeviceName = "auto"
    project_root: str = ".."
    output_dir: str = "."
    cache_dir: str = "build/cache"
    notebook_dir: str = "notebooks"
    executed_dir: str = "build/notebooks"
    progress: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    rnn: RNNStudyConfig = field(default_factory=RNNStudyConfig)
    counter: CounterStudyConfig = field(default_factory=CounterStudyConfig)
    transformer: TransformerStudyConfig = field(default_factory=TransformerStudyConfig)
    seq2seq: Seq2SeqStudyConfig = field(default_factory=Seq2SeqStudyConfig)
    internals: InternalsConfig = field(default_factory=InternalsConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    # How grids of independent runs (notebook 14) are spread: a local process pool or a Ray cluster.
    executor: ExecutorName = "local"
    workers: int | None = None            # None: one per CPU core (local), the cluster's CPUs (ray)
    ray_address: str | None = None        # None: start a local Ray instance for the run
    notebooks: tuple[NotebookConfig, ...] = ()
    # Set by the loader, not by the YAML file: the file this config came from.
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"name must be letters, digits, '-' or '_', got {self.name!r}")
        heads = self.transformer.scratch.heads
        if any(h % heads for h in self.scaling.model_hidden):
            raise ConfigError(f"scaling.model_hidden {list(self.scaling.model_hidden)} must be multiples of "
                              f"transformer.scratch.heads ({heads})")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be >= 1 or null (one per CPU core), got {self.workers}")
        names = [nb.name for nb in self.notebooks]
        if len(set(names)) != len(names):
            raise ConfigError(f"notebooks lists a notebook twice: {names}")

    # ----- resolved paths -------------------------------------------------
    @property
    def root_path(self) -> Path:
        base = Path(self.source).resolve().parent if self.source else Path.cwd()
        return (base / self.project_root).resolve()

    def path(self, value: str) -> Path:
        """Resolve a config path against the project root."""
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else (self.root_path / p)

    @property
    def data_root(self) -> Path:
        env = os.environ.get(DATA_DIR_ENV)
        return Path(env).expanduser().resolve() if env else self.path(self.data.root)

    @property
    def figures_dir(self) -> Path:
        return self.path(self.output_dir) / "figures"

    @property
    def tables_dir(self) -> Path:
        return self.path(self.output_dir) / "tables"

    @property
    def cache_path(self) -> Path:
        return self.path(self.cache_dir)

    def notebook(self, name: str) -> NotebookConfig:
        for nb in self.notebooks:
            if nb.name == name:
                return nb
        names = [nb.name for nb in self.notebooks]
        raise ConfigError(
            f"notebook {name!r} is not in config {self.name!r}; "
            f"choose one of {names}{did_you_mean(name, names)}"
        )
