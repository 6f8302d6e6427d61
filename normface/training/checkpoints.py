"""Where a training folder keeps its checkpoints, and the one rule for which to use.

    <model_dir>/checkpoints/ckpt-<step>   the latest few (resumption: model, optimizer, step, data)
    <model_dir>/best/ckpt-<step>          the model at the best validation score; best.json says which

"Best" is decided by :func:`selection_score` as validation runs; "best, else latest"
(:func:`find_checkpoint`) is the rule every consumer uses: restoring the model after training,
fine-tuning from another run (``init_from``, which also takes a packed model) and exporting.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import tensorflow as tf

LATEST_DIR = "checkpoints"
BEST_DIR = "best"
BEST_FILE = "best.json"
WHICH = ("best", "latest")
# Validation metrics of an independent judge (the Trainer's ``scorer``) are logged under this prefix.
JUDGE_PREFIX = "judge/"
JUDGE_SCORE = JUDGE_PREFIX + "cross_TAR@FAR0.1%_balanced"
JUDGE_TIE_BREAK = JUDGE_PREFIX + "cross_mean_cosine"


def find_checkpoint(model_dir: str | os.PathLike, which: str = "best") -> str | None:
    """The checkpoint prefix to use from ``model_dir``: for ``"best"`` the best checkpoint, else
    the latest one; for ``"latest"`` the latest one. None when there is none."""
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    folders = [BEST_DIR, LATEST_DIR] if which == "best" else [LATEST_DIR]
    return next((c for c in (tf.train.latest_checkpoint(str(Path(model_dir) / f)) for f in folders) if c), None)


def selection_score(metrics: dict[str, float]) -> float:
    """The best-checkpoint rule's score, higher is better: an independent judge's person-balanced
    cross-photo TAR at 0.1% FAR on validation people when it scored (ties broken by its mean
    genuine cosine), else the validation identity share within the same-person threshold (ties
    broken by a lower median distance), else minus the validation loss."""
    if JUDGE_SCORE in metrics:
        return metrics[JUDGE_SCORE] + 1e-3 * metrics.get(JUDGE_TIE_BREAK, 0.0)
    if "identity/within" in metrics:
        return metrics["identity/within"] - 1e-3 * metrics["identity/median"]
    return -metrics["validation/total"]


def initialize_from(model, source: str | os.PathLike, features=None) -> str:
    """Loads another model's weights into ``model`` for a fine-tuning phase; returns what it read.

    ``source`` is a run folder (its best checkpoint, else the latest) or a packed model folder
    (``weights.npz`` + ``normface.json``, e.g. the shipped model). Its architecture must match, or
    differ only in the texture CNN's upsampling: then, given ``features`` (``[n, F]`` real feature
    vectors), the stages that differ are fitted to the donor's
    (:func:`normface.models.transfer.transfer_weights`). FileNotFoundError when ``source`` holds
    neither; ValueError naming it when the weights do not fit."""
    import numpy as np

    from normface.models import ModelConfig, build_normalizer
    from normface.serving import packed

    source = Path(source)
    prefix = find_checkpoint(source, "best")
    if prefix is not None:
        try:
            tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
            return prefix
        except (ValueError, tf.errors.InvalidArgumentError) as err:
            if features is None or not (source / "config.json").is_file():
                raise ValueError(f"init_from={source}: its weights do not fit this model's config ({err})") from err
        record = json.loads((source / "config.json").read_text())
        donor = build_normalizer(ModelConfig.from_dict(record["model"]),
                                 np.asarray(record["metadata"]["mean_landmarks"], np.float32)).model
        tf.train.Checkpoint(model=donor).restore(prefix).expect_partial()
        _transfer(donor, model, features, source)
        return prefix
    if not (source / packed.WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"init_from={source}: no checkpoint in its {BEST_DIR}/ or {LATEST_DIR}/, "
                                f"and not a packed model ({packed.WEIGHTS_FILE})")
    donor, _ = packed.load(source)
    try:
        model.set_weights(donor.get_weights())
    except ValueError as err:
        if features is None:
            raise ValueError(f"init_from={source}: its weights do not fit this model's config ({err})") from err
        _transfer(donor, model, features, source)
    return str(source / packed.WEIGHTS_FILE)


def _transfer(donor, model, features, source) -> None:
    from normface.models.transfer import transfer_weights

    if features is None:
        raise ValueError(f"init_from={source}: another architecture; fitting its stages needs feature vectors")
    try:
        transfer_weights(donor, model, features)
    except ValueError as err:
        raise ValueError(f"init_from={source}: its weights do not fit this model's config ({err})") from err


def checkpoint_step(prefix: str) -> int:
    """The training step in a checkpoint prefix ``.../ckpt-<step>``."""
    return int(prefix.rsplit("-", 1)[-1])
