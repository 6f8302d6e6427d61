"""JSON-friendly dict round trips for normface's config dataclasses (models, training)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def to_dict(obj) -> dict[str, Any]:
    """The dataclass's fields, tuples as lists (what JSON gives back)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(obj).items()}


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """``cls(**data)``, or ValueError naming the unknown fields."""
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    return cls(**data)
