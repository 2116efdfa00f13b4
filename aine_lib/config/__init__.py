"""Study configuration: frozen dataclasses loaded from YAML and validated once, at load.

A config file (``configs/smoke.yaml``, ``configs/paper.yaml``) describes one run of the whole study.
Every key is checked: an unknown or misspelt key, a value of the wrong type or out of range raises
:class:`ConfigError` naming the full dotted key, the value, what is allowed and the nearest valid key
or value, so a typo never silently falls back to a default.

Relative paths in a config are resolved against ``project_root``, which is itself relative to the
directory holding the config file (default ``..``, so ``configs/x.yaml`` resolves against the repository
root). The data cache directory can be overridden with the ``AINE_DATA_DIR`` environment variable.

Modules: :mod:`~aine_lib.config.errors` (:class:`ConfigError`, "did you mean"),
:mod:`~aine_lib.config.schema` (the sections), :mod:`~aine_lib.config.scaling`,
:mod:`~aine_lib.config.study` (:class:`StudyConfig`, paths), :mod:`~aine_lib.config.loading`
(:func:`load_config`, :func:`config_to_dict`).
"""

from aine_lib.config.errors import (
    ConfigError,
    did_you_mean,
    dotted,
    nearest,
    unknown_keys_error,
)
from aine_lib.config.loading import (  # the private three as before the split, for any caller of them
    FrozenDict,
    _coerce,  # noqa: F401
    _deep_merge,  # noqa: F401
    _describe,  # noqa: F401
    build_dataclass,
    check_override_keys,
    config_to_dict,
    load_config,
)
from aine_lib.config.scaling import ScalingConfig, ScalingFamily
from aine_lib.config.schema import (
    DATASET_NAMES,
    AttentionName,
    BibleConfig,
    CounterStudyConfig,
    DataConfig,
    DatasetName,
    EncoderName,
    FaithfulnessMode,
    InternalsConfig,
    PlantedConfig,
    RNNStudyConfig,
    ScratchTransformerConfig,
    Seq2SeqStudyConfig,
    TransductionTask,
    TransformerStudyConfig,
)
from aine_lib.config.study import (
    DATA_DIR_ENV,
    DeviceName,
    ExecutorName,
    NotebookConfig,
    StudyConfig,
)

__all__ = [
    "DATASET_NAMES",
    "DATA_DIR_ENV",
    "AttentionName",
    "BibleConfig",
    "ConfigError",
    "CounterStudyConfig",
    "DataConfig",
    "DatasetName",
    "DeviceName",
    "EncoderName",
    "ExecutorName",
    "FaithfulnessMode",
    "FrozenDict",
    "InternalsConfig",
    "NotebookConfig",
    "PlantedConfig",
    "RNNStudyConfig",
    "ScalingConfig",
    "ScalingFamily",
    "ScratchTransformerConfig",
    "Seq2SeqStudyConfig",
    "StudyConfig",
    "TransductionTask",
    "TransformerStudyConfig",
    "build_dataclass",
    "check_override_keys",
    "config_to_dict",
    "did_you_mean",
    "dotted",
    "load_config",
    "nearest",
    "unknown_keys_error",
]
