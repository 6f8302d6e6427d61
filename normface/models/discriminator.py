"""A light patch discriminator (beyond the paper): is this registered texture real or decoded?

A PatchGAN-style stack of strided 4x4 convolutions with LeakyReLU, ending in one logit per patch
(``[b, s/2^n, s/2^n, 1]`` for ``n`` = len(channels)). Each logit sees a patch of the texture, so
the adversarial loss punishes blur locally (fine detail: skin, eyes, hair edges) without asking
for one realistic whole face from features the decoder cannot fully invert. It reads textures in
[0, 1] registered to the mean landmarks, so it needs no warp: the decoder-only training step
stays warp-free. Training only: it is never exported.
"""

from __future__ import annotations

from typing import Sequence

import keras

DEFAULT_CHANNELS = (32, 64, 128)
LEAKY_SLOPE = 0.2


def patch_discriminator(size: int, channels: Sequence[int] = DEFAULT_CHANNELS, name: str = "discriminator"
                        ) -> keras.Model:
    """``[b, size, size, 3]`` float32 in [0, 1] -> ``[b, size / 2^len(channels), ..., 1]`` logits."""
    if not channels or any(c < 1 for c in channels):
        raise ValueError(f"discriminator channels must be positive, got {tuple(channels)}")
    if size % (2 ** len(channels)):
        raise ValueError(f"discriminator: size {size} is not divisible by 2^{len(channels)}")
    inputs = keras.Input((size, size, 3), name="texture")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_symmetric")(inputs)
    for i, width in enumerate(channels):
        x = keras.layers.Conv2D(int(width), 4, strides=2, padding="same", name=f"conv{i}")(x)
        x = keras.layers.LeakyReLU(LEAKY_SLOPE, name=f"lrelu{i}")(x)
    logits = keras.layers.Conv2D(1, 3, padding="same", name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name=name)


def discriminator_features(discriminator: keras.Model) -> keras.Model:
    """The same network (shared weights) returning its intermediate activations
    (``lrelu0..``) and the logits last: what feature matching compares."""
    names = [layer.name for layer in discriminator.layers if layer.name.startswith("lrelu")]
    outputs = [discriminator.get_layer(n).output for n in names] + [discriminator.output]
    return keras.Model(discriminator.input, outputs, name=f"{discriminator.name}_features")
