"""The learning-rate schedule of Adam: constant, cosine to 0 over the run (with optional linear
warm-up), or exponential decay; all from :class:`normface.training.config.TrainConfig`."""

from __future__ import annotations

import keras

from normface.training.config import TrainConfig


def learning_rate_schedule(config: TrainConfig):
    """Adam's learning rate: a float or a keras schedule of the optimizer's step."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    if config.lr_schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(config.learning_rate, config.decay_steps, config.decay_rate)
    warmup = min(config.warmup_steps, config.steps - 1)
    if warmup > 0:
        return keras.optimizers.schedules.CosineDecay(
            0.0, max(1, config.steps - warmup), warmup_target=config.learning_rate, warmup_steps=warmup
        )
    return keras.optimizers.schedules.CosineDecay(config.learning_rate, config.steps)
