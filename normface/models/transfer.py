"""Warm-starting a normalizer from one of another upsampling (issue 28).

A model whose texture CNN upsamples by bilinear resize + 3x3 convolution (``upsampling="resize"``)
cannot take the weights of the paper's transposed-convolution stages as they are, but everything
else (feature MLP, landmark MLP, the grid, the RGB layer) is the same network. :func:`transfer_weights`
copies every layer that matches by sub-model and layer name and shape, then fits each stage that
does not by least squares, stage by stage from the grid up: the new stage's input is the new
model's own activation (so the fit absorbs the error of the stages below it) and its target is the
donor stage's pre-activation output on the donor's input, on real feature vectors. A bilinear
resize has almost no energy at the highest frequencies, so the fitted stages keep what the donor
draws and drop its checkerboard; fine-tuning does the rest.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

TEXTURE_CNN = "texture_cnn"
RIDGE = 1e-3  # relative to the mean diagonal of the normal equations: keeps rare channels finite


def _layers(model: keras.Model) -> dict[tuple[str, str], keras.layers.Layer]:
    """``(sub-model name, layer name) -> layer`` for every layer with weights."""
    found = {}
    for outer in model.layers:
        inner = outer.layers if isinstance(outer, keras.Model) else [outer]
        for layer in inner:
            if layer.weights:
                found[(outer.name, layer.name)] = layer
    return found


def _stage_names(cnn: keras.Model) -> list[str]:
    return sorted((layer.name for layer in cnn.layers if layer.name.startswith("up")), key=lambda n: int(n[2:]))


def _donor_pre_activation(layer: keras.layers.Layer, x: tf.Tensor) -> tf.Tensor:
    """A stage's output before its ReLU (transposed or plain convolution)."""
    kernel, bias = layer.kernel, layer.bias
    if isinstance(layer, keras.layers.Conv2DTranspose):
        shape = tf.stack([tf.shape(x)[0], 2 * tf.shape(x)[1], 2 * tf.shape(x)[2], kernel.shape[2]])
        y = tf.nn.conv2d_transpose(x, tf.cast(kernel, x.dtype), shape, strides=2, padding="SAME")
    else:
        y = tf.nn.conv2d(x, tf.cast(kernel, x.dtype), strides=1, padding="SAME")
    return y + tf.cast(bias, x.dtype)


def _fit_conv(inputs: np.ndarray, targets: np.ndarray, kernel_size: int, rng: np.random.Generator,
              max_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares ``kernel [k, k, cin, cout]`` and ``bias [cout]`` of a 'same' convolution
    mapping ``inputs [n, h, w, cin]`` to ``targets [n, h, w, cout]`` (ridge-regularized), on at
    most ``max_rows`` random pixels (drawn evenly from the examples; patches built one example at
    a time, so memory stays at the sample's size)."""
    n, h, w, cin = inputs.shape
    per_example = max(1, -(-max_rows // n))
    rows, values = [], []
    for i in range(n):
        patches = tf.image.extract_patches(tf.constant(inputs[i:i + 1]), sizes=[1, kernel_size, kernel_size, 1],
                                           strides=[1, 1, 1, 1], rates=[1, 1, 1, 1], padding="SAME").numpy()
        keep = rng.choice(h * w, min(per_example, h * w), replace=False)
        rows.append(patches.reshape(h * w, -1)[keep])
        values.append(targets[i].reshape(h * w, -1)[keep])
    a = np.concatenate(rows).astype(np.float64)
    y = np.concatenate(values).astype(np.float64)
    a = np.concatenate([a, np.ones((len(a), 1))], axis=1)
    normal = a.T @ a
    normal[np.diag_indices_from(normal)] += RIDGE * float(np.mean(np.diag(normal)))
    solution = np.linalg.solve(normal, a.T @ y)
    return solution[:-1].reshape(kernel_size, kernel_size, cin, -1), solution[-1]


def transfer_weights(donor: keras.Model, model: keras.Model, features: np.ndarray, max_rows: int = 20000,
                     seed: int = 0) -> dict[str, list[str]]:
    """Loads ``donor``'s weights into ``model`` (both normalizer models), fitting the texture CNN
    stages whose shapes differ on ``features`` ``[n, F]`` (a few hundred real feature vectors).

    A refiner the donor lacks (``refine*`` layers of the texture CNN) keeps its initialization: its
    correction starts at zero, so the model starts with the donor's output.

    Returns ``{"copied": [...], "fitted": [...], "new": [...]}`` (``sub-model/layer`` names).
    ValueError naming the layer when a layer other than an upsampling stage does not fit."""
    donor_layers, layers = _layers(donor), _layers(model)
    copied, pending, new = [], [], []
    for key, layer in layers.items():
        source = donor_layers.get(key)
        if source is None and key[0] == TEXTURE_CNN and key[1].startswith("refine"):
            new.append("/".join(key))
            continue
        if source is None:
            raise ValueError(f"transfer_weights: the donor has no layer {'/'.join(key)}")
        if [tuple(w.shape) for w in source.weights] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(source.get_weights())
            copied.append("/".join(key))
        elif key[0] == TEXTURE_CNN and key[1].startswith("up"):
            pending.append(key[1])
        else:
            raise ValueError(f"transfer_weights: layer {'/'.join(key)} has weights {[w.shape for w in layer.weights]}, "
                             f"the donor's {[w.shape for w in source.weights]}")
    fitted = []
    if pending:
        rng = np.random.default_rng(seed)
        donor_cnn, cnn = donor.get_layer(TEXTURE_CNN), model.get_layer(TEXTURE_CNN)
        hidden = donor.get_layer("feature_mlp")(tf.constant(features, tf.float32))
        donor_x = new_x = donor_cnn.get_layer("grid")(donor_cnn.get_layer("to_grid")(hidden))
        for name in _stage_names(cnn):
            donor_stage, stage = donor_cnn.get_layer(name), cnn.get_layer(name)
            target = _donor_pre_activation(donor_stage, donor_x)
            if name in pending:
                resized = cnn.get_layer(f"resize{name[2:]}")(new_x)
                kernel, bias = _fit_conv(np.asarray(resized), np.asarray(target), stage.kernel.shape[0], rng, max_rows)
                stage.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
                fitted.append(f"{TEXTURE_CNN}/{name}")
                new_x = stage(resized)
            else:
                new_x = stage(new_x)
            donor_x = tf.nn.relu(target)
    return {"copied": copied, "fitted": fitted, "new": new}
