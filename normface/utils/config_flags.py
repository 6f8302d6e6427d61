"""absl flags generated from config dataclasses, so each default is declared once (in the dataclass).

A binary passes the help text of each field and, for string fields with a fixed set of values,
the choices; :func:`define_flags` declares one flag per field (same name, the field's default)
and :func:`from_flags` builds the dataclass back from the parsed flags. Tuples of ints become
list flags (``--channels=128,64,32,32``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

from absl import flags

T = TypeVar("T")


def define_flags(cls: type, help: Mapping[str, str], choices: Mapping[str, tuple[str, ...]] | None = None,
                 skip: tuple[str, ...] = (), flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
    """Declares a flag per field of ``cls`` (except ``skip``); returns their names.

    ``help`` must name exactly the declared fields (a missing or unknown name is a ValueError,
    so the help cannot drift from the dataclass)."""
    names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    missing, unknown = sorted(set(names) - set(help)), sorted(set(help) - set(names))
    if missing or unknown:
        raise ValueError(f"{cls.__name__} flags: help missing for {missing}, help for unknown fields {unknown}")
    choices = choices or {}
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        text = help[field.name]
        if isinstance(default, bool):
            flags.DEFINE_bool(field.name, default, text, flag_values=flag_values)
        elif isinstance(default, int):
            flags.DEFINE_integer(field.name, default, text, flag_values=flag_values)
        elif isinstance(default, float):
            flags.DEFINE_float(field.name, default, text, flag_values=flag_values)
        elif isinstance(default, tuple):
            flags.DEFINE_list(field.name, [str(v) for v in default], text, flag_values=flag_values)
        elif field.name in choices:
            flags.DEFINE_enum(field.name, default, list(choices[field.name]), text, flag_values=flag_values)
        elif isinstance(default, str):
            flags.DEFINE_string(field.name, default, text, flag_values=flag_values)
        else:
            raise TypeError(f"{cls.__name__}.{field.name}: no flag type for default {default!r}")
    return names


def from_flags(cls: type[T], flag_values: flags.FlagValues = flags.FLAGS, skip: tuple[str, ...] = (),
               **overrides: Any) -> T:
    """``cls`` built from the flags :func:`define_flags` declared (``overrides`` win)."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name in skip or field.name in overrides:
            continue
        value = flag_values[field.name].value
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        if isinstance(default, tuple):
            kind = type(default[0]) if default else str
            value = tuple(kind(v) for v in value)
        values[field.name] = value
    return cls(**values, **overrides)
