"""The one exception a bad config raises, and the "did you mean" its messages carry.

Every message names the full dotted key (``data.planted.n_train``), what was received and what is
allowed; where a misspelling is likely, it also names the nearest allowed key or value.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class ConfigError(ValueError):
    """A config file or override has an unknown key or a bad value."""


def dotted(prefix: str, name: Any) -> str:
    """The full key of ``name`` inside the section ``prefix`` (``""`` for the top level)."""
    return f"{prefix}.{name}" if prefix else str(name)


def nearest(value: Any, choices: Iterable[Any]) -> str | None:
    """The choice closest in spelling to ``value`` (difflib's ratio >= 0.6), or None when none is close."""
    matches = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(value: Any, choices: Iterable[Any], prefix: str = "") -> str:
    """``"; did you mean 'prefix.choice'?"`` for the choice nearest ``value``, or ``""`` when none is close."""
    match = nearest(value, choices)
    return f"; did you mean {dotted(prefix, match)!r}?" if match is not None else ""


def unknown_keys_error(prefix: str, unknown: list[Any], allowed: Iterable[str],
                       origin: str = "") -> ConfigError:
    """The error for keys of section ``prefix`` that its schema does not have.

    It names each unknown key in full with the nearest allowed key, and lists the allowed keys of the
    section; ``origin`` says where the keys came from (say ``"the overrides"``) when not the file.
    """
    allowed = sorted(allowed)
    where = f" in {prefix}" if prefix else ""
    source = f" (from {origin})" if origin else ""
    named = []
    for key in unknown:
        full = dotted(prefix, key)
        match = nearest(key, allowed)
        hint = f" (did you mean {dotted(prefix, match)!r}?)" if match is not None else ""
        named.append(f"{full!r}{hint}")
    return ConfigError(
        f"unknown key(s) {unknown}{where}{source}: {', '.join(named)} "
        f"{'is not a config key' if len(unknown) == 1 else 'are not config keys'}; "
        f"allowed keys{where} are {allowed}"
    )
