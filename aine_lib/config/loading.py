"""Loading a study config: strict, typed construction of the dataclasses from YAML plus overrides.

Every key is checked once, here, before a section's own ``__post_init__`` checks its ranges: an unknown
or misspelt key, a value of the wrong type or a name outside its allowed set raises :class:`ConfigError`
naming the full dotted key, what was received, what is allowed and the nearest allowed key or value, so a
typo never silently falls back to a default. :func:`config_to_dict` is the plain view that manifests and
cache keys are made of.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from aine_lib.config.errors import ConfigError, did_you_mean, dotted, unknown_keys_error
from aine_lib.config.study import StudyConfig


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of ({_describe(typing.get_args(tp)[0])})"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return f"a mapping with keys {[f.name for f in dataclasses.fields(tp) if f.init]}"
    return getattr(tp, "__name__", str(tp))


def _literal_choices(tp: Any) -> list[Any]:
    """The allowed values of a ``Literal`` type, also inside a union (``Literal[...] | None``)."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return list(typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return [choice for arg in typing.get_args(tp) for choice in _literal_choices(arg)]
    return []


def _bad_value(value: Any, tp: Any, key: str) -> ConfigError:
    """The error for ``value`` at ``key`` not being a ``tp``: the key, the value, the expected type or the
    allowed values, and the nearest allowed value of a misspelt name."""
    hint = ""
    if isinstance(value, str):
        hint = did_you_mean(value, _literal_choices(tp))
    if typing.get_origin(tp) is tuple and isinstance(value, (str, int, float)):
        hint += f"; write a list, e.g. [{value}]"
    return ConfigError(f"{key}: got {value!r}, expected {_describe(tp)}{hint}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise _bad_value(value, tp, key)
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise _bad_value(value, tp, key)
    if tp is type(None):
        if value is not None:
            raise _bad_value(value, tp, key)
        return None
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _bad_value(value, tp, key)
        (item_tp, *_rest) = typing.get_args(tp)
        return tuple(_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _bad_value(value, tp, key)
        args = typing.get_args(tp)
        if len(args) == 2:   # Mapping[K, V]: every key and value checked like a field of its own
            key_tp, value_tp = args
            value = {_coerce(k, key_tp, f"{key} key {k!r}"): _coerce(v, value_tp, f"{key}.{k}")
                     for k, v in value.items()}
        return FrozenDict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise _bad_value(value, tp, key)
        return build_dataclass(tp, value, prefix=key)
    if tp is bool:
        if not isinstance(value, bool):
            raise _bad_value(value, tp, key)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad_value(value, tp, key)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad_value(value, tp, key)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _bad_value(value, tp, key)
        return value
    raise ConfigError(f"{key}: unsupported field type {tp!r}")  # pragma: no cover - programming error


def _config_fields(cls: type) -> dict[str, dataclasses.Field]:
    """The fields of ``cls`` a config file may set (``source`` is the loader's)."""
    return {f.name: f for f in dataclasses.fields(cls) if f.init and f.name != "source"}


def build_dataclass(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    """Build ``cls`` from a mapping, rejecting unknown keys and ill-typed values."""
    hints = typing.get_type_hints(cls)
    fields = _config_fields(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise unknown_keys_error(prefix, unknown, fields)
    kwargs = {}
    for name, value in values.items():
        key = dotted(prefix, name)
        kwargs[name] = _coerce(value, hints[name], key)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # missing required field
        missing = [n for n, f in fields.items()
                   if n not in kwargs and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        raise ConfigError(f"{prefix or cls.__name__}: missing required key(s) {missing}") from exc


def check_override_keys(cls: type, overrides: Mapping[str, Any], prefix: str = "") -> None:
    """Reject an override key that the schema of ``cls`` lacks, naming it as an override (``--set``).

    Dotted keys (``data.planted.n_train``) and nested mappings are followed through the dataclass sections;
    keys inside a mapping-valued field (``transformer.analysis_examples.sst``) and all values are checked
    when the merged config is built.
    """
    hints = typing.get_type_hints(cls)
    fields = _config_fields(cls)
    for key, value in overrides.items():
        if isinstance(key, str) and "." in key:
            key, rest = key.split(".", 1)
            value = {rest: value}
        if key not in fields:
            raise unknown_keys_error(prefix, [key], fields, origin="the overrides, e.g. --set")
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, Mapping):
            check_override_keys(hints[key], value, dotted(prefix, key))


def _deep_merge(base: dict, overrides: Mapping[str, Any]) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(key, str) and "." in key:  # dotted override: data.max_train_examples=100
            head, rest = key.split(".", 1)
            value = {rest: value}
            key = head
        if isinstance(value, Mapping):
            # a section the file leaves out is built from the override alone (its dotted keys still nest)
            out[key] = _deep_merge(dict(out[key]) if isinstance(out.get(key), Mapping) else {}, value)
        else:
            out[key] = value
    return out


def load_config(path: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> StudyConfig:
    """Load and validate a study config; ``overrides`` (dotted keys allowed) win over the file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist; use configs/smoke.yaml or configs/paper.yaml")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}")
    if overrides:
        check_override_keys(StudyConfig, overrides)
        raw = _deep_merge(dict(raw), overrides)
    cfg = build_dataclass(StudyConfig, raw)
    return dataclasses.replace(cfg, source=str(path.resolve()))


class FrozenDict(dict):
    """The read-only mapping a config's ``Mapping`` fields hold. Unlike ``types.MappingProxyType`` it pickles,
    so a config can travel to process-pool and Ray workers (`aine run --executor local --workers 2`)."""

    def _read_only(self, *args, **kwargs):
        raise TypeError("config mappings are read-only; change them with an override or dataclasses.replace")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self):
        return (FrozenDict, (dict(self),))


def config_to_dict(cfg: Any) -> Any:
    """A plain, JSON-able view of a config (for manifests and cache keys)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
                if f.name != "source"}
    if isinstance(cfg, Mapping):
        return {str(k): config_to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [config_to_dict(v) for v in cfg]
    return cfg
