"""absl flags generated from config dataclasses, so each default is declared once (in the dataclass).

A binary passes the help text of each field and, for string fields with a fixed set of values,
the choices; :func:`define_flags` declares one flag per field (same name, the field's default)
and :func:`from_flags` builds the dataclass back from the parsed flags. Tuples of ints become
list flags (``--channels=128,64,32,32``). ``bounds`` gives numeric flags their ranges, checked
when the flags are parsed.

The binaries run ``app.run(main, flags_parser=config_flags.flags_parser)``: a flag out of its
range (or failing a validator) is then one line on stderr and exit 2, before any work, and
:func:`usage_error` is the exit-2 error for checks ``main`` makes itself.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Mapping, TypeVar

from absl import app, flags

EXIT_USAGE = 2


def flags_parser(argv: list[str]) -> list[str]:
    """``app.run``'s flags parser: a bad flag is one line naming it and exit 2 (absl's own exits 1)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        prog = os.path.basename(argv[0]) if argv else "binary"
        print(f"{prog}: usage error: {err} (see {prog} --helpshort)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


RUNNER_FLAG = "runner"
# The command line's arguments left for Apache Beam's pipeline options (beam_flags_parser).
BEAM_ARGS: list[str] = []


def define_runner_flag(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Declares ``--runner``: empty (the default) runs the local path; an Apache Beam runner name
    (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner...) runs the Beam pipeline, and the
    flags this binary does not know are that pipeline's options (``--project``, ``--region``...)."""
    flags.DEFINE_string(RUNNER_FLAG, "", "Apache Beam runner (DirectRunner, DataflowRunner, FlinkRunner, "
                        "SparkRunner...); empty: the local path. With a runner, unknown flags are Beam pipeline "
                        "options (e.g. --direct_num_workers=2 --direct_running_mode=multi_processing, or "
                        "--project --region --temp_location --setup_file for Dataflow).", flag_values=flag_values)


def beam_flags_parser(argv: list[str]) -> list[str]:
    """:func:`flags_parser` for a binary with ``--runner``: with a runner set, the flags it does
    not know are kept in :data:`BEAM_ARGS` for the pipeline options; without one they are errors."""
    prog = os.path.basename(argv[0]) if argv else "binary"
    try:
        rest = flags.FLAGS(argv, known_only=True)
    except flags.Error as err:
        print(f"{prog}: usage error: {err} (see {prog} --helpshort)", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    if not flags.FLAGS[RUNNER_FLAG].value:
        unknown = [a for a in rest[1:] if a.startswith("-")]
        if unknown:
            print(f"{prog}: usage error: unknown flag {unknown[0]} (Beam pipeline options need --runner; "
                  f"see {prog} --helpshort)", file=sys.stderr)
            sys.exit(EXIT_USAGE)
        return rest
    BEAM_ARGS[:] = rest[1:]  # "--flag value" pairs too: the pipeline options parse them
    return rest[:1]


def usage_error(message: str) -> app.UsageError:
    """An ``app.UsageError`` that exits 2 (raise it from ``main`` for a bad flag combination)."""
    return app.UsageError(message, exitcode=EXIT_USAGE)


def existing_folder(name: str, flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Validates ``--name`` (when given) as an existing folder."""
    flags.register_validator(name, lambda v: v is None or v == "" or os.path.isdir(v),
                             message=f"--{name} must be an existing folder", flag_values=flag_values)

T = TypeVar("T")


def define_flags(cls: type, help: Mapping[str, str], choices: Mapping[str, tuple[str, ...]] | None = None,
                 skip: tuple[str, ...] = (), flag_values: flags.FlagValues = flags.FLAGS,
                 bounds: Mapping[str, tuple[float | None, float | None]] | None = None) -> list[str]:
    """Declares a flag per field of ``cls`` (except ``skip``); returns their names. ``bounds``
    maps numeric fields to their inclusive (lower, upper) range (None: open).

    ``help`` must name exactly the declared fields (a missing or unknown name is a ValueError,
    so the help cannot drift from the dataclass)."""
    names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    missing, unknown = sorted(set(names) - set(help)), sorted(set(help) - set(names))
    if missing or unknown:
        raise ValueError(f"{cls.__name__} flags: help missing for {missing}, help for unknown fields {unknown}")
    choices = choices or {}
    bounds = bounds or {}
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        text = help[field.name]
        if isinstance(default, bool):
            flags.DEFINE_bool(field.name, default, text, flag_values=flag_values)
        elif isinstance(default, int):
            low, high = bounds.get(field.name, (None, None))
            flags.DEFINE_integer(field.name, default, text, lower_bound=low, upper_bound=high, flag_values=flag_values)
        elif isinstance(default, float):
            low, high = bounds.get(field.name, (None, None))
            flags.DEFINE_float(field.name, default, text, lower_bound=low, upper_bound=high, flag_values=flag_values)
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
