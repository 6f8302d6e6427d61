"""What the encoder keeps of perceived age: a photo's features moved along the age direction and
decoded (``normface explore``, issue 32; the paper's decoder as "an exploratory tool").

The direction is a linear probe's (ridge regression of FairFace annotators' perceived age groups
on the dlib features of training-split photos), shipped as ``assets/age_direction.json`` by
``experiments/attribute_probes.py --write_asset``; this module reads only that file. It shows
what the features *correlate* with perceived age in one data set, decoded by a model trained for
identity: not an age estimate, not a way to age or de-age a person faithfully. Only age is
offered: there is deliberately no direction for gender or race.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import numpy as np

ASSET_DIR = Path(__file__).parent / "assets"
ATTRIBUTES = ("age",)


@dataclasses.dataclass
class Direction:
    """A unit of ``vector`` moves the predicted attribute by one of its ``units``; walked
    features are kept within ``[low, high]`` (the training photos' per-dimension range)."""

    attribute: str
    vector: np.ndarray
    low: np.ndarray
    high: np.ndarray
    units: str


def load_direction(attribute: str = "age", path: str | Path | None = None) -> Direction:
    """The shipped direction of ``attribute`` (only ``age``); ValueError naming the argument or
    the file when it is unknown or unreadable."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"attribute must be one of {ATTRIBUTES} (no direction is offered for gender or race), "
                         f"got {attribute!r}")
    path = Path(path) if path else ASSET_DIR / f"{attribute}_direction.json"
    try:
        data = json.loads(path.read_text())
        vector = np.asarray(data["direction"], np.float32)
        low, high = np.asarray(data["feature_min"], np.float32), np.asarray(data["feature_max"], np.float32)
    except FileNotFoundError:
        raise
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a direction file ({type(err).__name__}: {err})") from err
    if vector.ndim != 1 or low.shape != vector.shape or high.shape != vector.shape:
        raise ValueError(f"{path}: direction and ranges must be equal-length vectors")
    return Direction(attribute, vector, low, high, str(data.get("units", "")))


def offsets(span: float, steps: int) -> np.ndarray:
    """``steps`` offsets from ``-span`` to ``+span`` (units of the direction)."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    if not span > 0:
        raise ValueError(f"span must be > 0, got {span}")
    return np.linspace(-span, span, steps)


def explore(normalizer, features: np.ndarray, direction: Direction, steps: Sequence[float]):
    """Decoded faces (:class:`normface.serving.merge.Decoded`) of ``features`` moved by each of
    ``steps`` units along ``direction`` (kept within the training range)."""
    from normface.serving import merge

    features = np.asarray(features, np.float32)
    if features.shape != direction.vector.shape:
        raise ValueError(f"the model's features have {features.shape[-1]} dimensions, the {direction.attribute} "
                         f"direction {direction.vector.shape[-1]}: it was made for another encoder")
    moved = np.clip(features[None] + np.asarray(steps, np.float32)[:, None] * direction.vector[None],
                    direction.low, direction.high)
    return merge.decode(normalizer, moved)
