"""Tests of normface.training.losses: values by hand, per-example shapes, the identity metric, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from normface.evaluation import metrics
from normface.training import losses
from normface.models import IMAGE, LANDMARKS, build_normalizer
from normface.testing.synthetic import fake_embed_fn, mean_landmarks, tiny_model_config

RNG = np.random.default_rng(0)


def test_landmark_mse_is_in_units_of_the_image_size():
    true = RNG.uniform(0, 64, (3, 68, 2)).astype(np.float32)
    pred = true + 6.4  # 10% of 64 px in x and y
    loss = losses.LandmarkMSE(64)
    per_example = loss.call(true, pred)
    assert per_example.shape == (3,)
    np.testing.assert_allclose(per_example, 0.01, rtol=1e-5)
    np.testing.assert_allclose(loss(true, pred), 0.01, rtol=1e-5)
    # Same relative error at another size, same loss.
    np.testing.assert_allclose(losses.LandmarkMSE(128).call(true * 2, pred * 2), 0.01, rtol=1e-5)


def test_texture_l1():
    a = RNG.uniform(size=(2, 8, 8, 3)).astype(np.float32)
    b = RNG.uniform(size=(2, 8, 8, 3)).astype(np.float32)
    per_example = losses.TextureL1().call(a, b)
    np.testing.assert_allclose(per_example, np.abs(a - b).mean(axis=(1, 2, 3)), rtol=1e-5)
    with pytest.raises(ValueError, match="textures"):
        losses.TextureL1().call(a, b[:, :4])


def test_identity_loss_kinds():
    a = RNG.normal(size=(4, 128)).astype(np.float32)
    b = RNG.normal(size=(4, 128)).astype(np.float32)
    sq = losses.IdentityLoss().call(a, b)
    np.testing.assert_allclose(sq, ((a - b) ** 2).sum(-1), rtol=1e-5)
    cos = losses.IdentityLoss("negative_cosine").call(a, b)
    expected = -(a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    np.testing.assert_allclose(cos, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(losses.IdentityLoss("negative_cosine").call(a, 3 * a), -1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="identity loss kind"):
        losses.IdentityLoss("cosine")


def test_identity_metric_share_and_median():
    metric = losses.IdentityMetric()
    distances = RNG.uniform(0.1, 1.5, 1001).astype(np.float32)
    metric.update_distances(distances[:500])
    metric.update_distances(distances[500:])
    result = {k: float(v) for k, v in metric.result().items()}
    assert result["within"] == pytest.approx(np.mean(distances < 0.6), abs=1e-6)
    assert result["median"] == pytest.approx(np.median(distances), abs=metric.max_distance / metric.bins)
    metric.reset_state()
    assert np.isnan(float(metric.result()["median"]))


def test_identity_metric_from_descriptors():
    a = RNG.normal(size=(6, 128)).astype(np.float32)
    b = a.copy()
    b[:2] += 1.0  # distance sqrt(128) > 0.6 for two of six
    metric = losses.IdentityMetric()
    metric.update_state(a, b)
    assert float(metric.result()["within"]) == pytest.approx(4 / 6)


def test_identity_loss_gradients_reach_decoder_weights():
    net = build_normalizer(tiny_model_config(), mean_landmarks(32))
    embed = fake_embed_fn()
    features = RNG.normal(size=(2, 16)).astype(np.float32)
    target = RNG.normal(size=(2, 128)).astype(np.float32)
    with tf.GradientTape() as tape:
        out = net.model(features)
        loss = tf.reduce_mean(losses.IdentityLoss().call(target, embed(out[IMAGE], out[LANDMARKS])))
    variables = net.model.trainable_variables
    grads = {id(v): g for v, g in zip(variables, tape.gradient(loss, variables))}
    for name in ("texture_cnn", "landmark_mlp", "feature_mlp"):
        for v in net.model.get_layer(name).trainable_variables:
            g = grads[id(v)]
            assert g is not None and float(tf.norm(g)) > 0, f"identity loss gradient missed {name}/{v.path}"
    # The encoder stays frozen.
    assert not embed.model.trainable_variables


def _smooth_faces(n: int, size: int) -> np.ndarray:
    """``[n, size, size, 3]`` smooth random images in [0, 1] (blurred noise: no lattice of their own)."""
    import cv2

    noise = RNG.uniform(size=(n, size, size, 3)).astype(np.float32)
    return np.stack([cv2.GaussianBlur(im, (0, 0), 3.0) for im in noise])


def test_landmark_spread_asks_the_batch_to_spread_as_its_targets_do():
    rng = np.random.default_rng(0)
    size = 64
    targets = (32 + 3 * rng.normal(size=(16, 68, 2))).astype(np.float32)
    centre = targets.mean(axis=0, keepdims=True)

    def cost(pred):
        return float(losses.landmark_spread_mismatch(tf.constant(targets), tf.constant(pred, tf.float32), size))

    assert cost(targets) == pytest.approx(0.0, abs=1e-9)
    assert cost(targets + np.float32(5.0)) == pytest.approx(0.0, abs=1e-9)  # where they lie is the MSE's
    assert cost(targets[::-1]) == pytest.approx(0.0, abs=1e-9)  # blind to which face gets which shape
    shrunk = [cost(centre + k * (targets - centre)) for k in (0.0, 0.4, 0.8)]
    assert shrunk[0] > shrunk[1] > shrunk[2] > 0  # the mean shape alone costs most
    assert shrunk[0] == pytest.approx(float(np.mean(targets.std(axis=0) ** 2)) / size ** 2, rel=1e-3)
    # Spreading too much costs as spreading too little.
    assert cost(centre + 1.4 * (targets - centre)) == pytest.approx(cost(centre + 0.6 * (targets - centre)), rel=1e-3)
    pred = tf.Variable(centre + 0.4 * (targets - centre))
    with tf.GradientTape() as tape:
        value = losses.landmark_spread_mismatch(tf.constant(targets), pred, size)
    step = pred - 1e3 * tape.gradient(value, pred)  # a gradient step spreads the predictions out
    assert float(tf.math.reduce_std(step)) > float(tf.math.reduce_std(pred))


def test_texture_spread_asks_the_batch_to_vary_as_its_targets_do():
    targets = _smooth_faces(8, 16)
    centre = targets.mean(axis=0, keepdims=True)

    def cost(outputs):
        return float(losses.texture_spread_mismatch(tf.constant(targets), tf.constant(outputs, tf.float32)))

    assert cost(targets) == pytest.approx(0.0, abs=1e-5)
    assert cost(targets - np.float32(0.1)) == pytest.approx(0.0, abs=1e-5)  # the mean face is the pixel loss's
    assert cost(targets[::-1]) == pytest.approx(0.0, abs=1e-5)  # blind to which face varies which way
    shrunk = [cost(centre + k * (targets - centre)) for k in (0.0, 0.4, 0.8)]
    assert shrunk[0] > shrunk[1] > shrunk[2] > 0  # the mean face alone costs most
    # (the mean face's own spread is the 1e-4 floor that keeps the square root differentiable)
    assert shrunk[0] == pytest.approx(float(np.mean(np.sqrt(targets.var(axis=0) + 1e-8))) - 1e-4, rel=1e-4)
    # Varying too much costs as varying too little.
    assert cost(centre + 1.4 * (targets - centre)) == pytest.approx(cost(centre + 0.6 * (targets - centre)), rel=1e-3)
    pred = tf.Variable(centre + 0.4 * (targets - centre))
    with tf.GradientTape() as tape:
        value = losses.texture_spread_mismatch(tf.constant(targets), pred)
    step = pred - 1e2 * tape.gradient(value, pred)  # a gradient step spreads the textures out
    assert float(np.mean(np.std(step.numpy(), axis=0))) > float(np.mean(np.std(pred.numpy(), axis=0)))
    assert cost(step.numpy()) < cost(pred.numpy())
    # With pixel weights, a mean over those pixels: variation where the weight is 0 costs nothing.
    weights = np.zeros((16, 16), np.float32)
    weights[4:12, 4:12] = 1.0
    wrong_outside = np.array(targets)
    wrong_outside[:, :4] = centre[:, :4]  # the top rows all alike, the weighted square as the targets
    weighted = losses.texture_spread_mismatch(tf.constant(targets), tf.constant(wrong_outside), pixel_weights=weights)
    assert float(weighted) == pytest.approx(0.0, abs=1e-5)
    assert cost(wrong_outside) > 0.005  # unweighted, the same textures cost (measured 0.0087)
    inside = np.array(targets)
    inside[:, 4:12, 4:12] = centre[:, 4:12, 4:12]
    expected = float(np.mean(np.sqrt(targets[:, 4:12, 4:12].var(axis=0) + 1e-8))) - 1e-4
    assert float(losses.texture_spread_mismatch(tf.constant(targets), tf.constant(inside), pixel_weights=weights)) == \
        pytest.approx(expected, rel=1e-4)


def test_texture_deviation_asks_each_face_to_stand_as_far_from_the_mean_as_its_target():
    targets = _smooth_faces(8, 16)
    centre = targets.mean(axis=0, keepdims=True)

    def cost(outputs, weights=None):
        return losses.texture_deviation_mismatch(tf.constant(targets), tf.constant(outputs, tf.float32),
                                                 pixel_weights=weights).numpy()

    assert cost(targets).shape == (8,)
    assert np.allclose(cost(targets), 0.0, atol=1e-5)
    assert np.allclose(cost(targets + np.float32(0.1)), 0.0, atol=1e-5)  # the mean face is the pixel loss's
    sizes = np.sqrt(np.mean((targets - centre) ** 2, axis=(1, 2, 3)))
    # Each face's own deviation, scaled: the cost is its size's shortfall, face by face.
    assert np.allclose(cost(centre + 0.5 * (targets - centre)), 0.5 * sizes, rtol=1e-3)
    assert np.allclose(cost(centre + 1.5 * (targets - centre)), 0.5 * sizes, rtol=1e-3)  # too far costs too
    # Blind to the direction: each face's deviation reversed (the same size) costs nothing.
    assert np.allclose(cost(centre - (targets - centre)), 0.0, atol=1e-5)
    # Weighted: a mean over the weighted pixels; deviation where the weight is 0 costs nothing.
    weights = np.zeros((16, 16), np.float32)
    weights[4:12, 4:12] = 1.0
    outside_flat = np.array(targets)
    outside_flat[:, :4] = centre[:, :4]
    assert np.allclose(cost(outside_flat, weights), 0.0, atol=1e-5) and cost(outside_flat).max() > 1e-3
    pred = tf.Variable(centre + 0.5 * (targets - centre))
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(losses.texture_deviation_mismatch(tf.constant(targets), pred))
    step = (pred - 1e-2 * tape.gradient(value, pred)).numpy()  # a step draws each face's deviation larger
    assert cost(step).mean() < cost(pred.numpy()).mean()
    assert np.all(np.sqrt(np.mean((step - step.mean(0)) ** 2, axis=(1, 2, 3))) >
                  np.sqrt(np.mean((pred.numpy() - centre) ** 2, axis=(1, 2, 3))))


def test_descriptor_relation_asks_outputs_to_lie_as_far_apart_as_their_photos():
    rng = np.random.default_rng(1)
    photos = rng.normal(scale=0.1, size=(8, 16)).astype(np.float32)
    centre = photos.mean(axis=0, keepdims=True)

    def cost(outputs):
        return float(losses.descriptor_relation_mismatch(tf.constant(photos), tf.constant(outputs, tf.float32)))

    assert cost(photos) == pytest.approx(0.0, abs=1e-9)
    assert cost(photos + np.float32(0.3)) == pytest.approx(0.0, abs=1e-9)  # where they lie is the identity loss's
    rotation = np.linalg.qr(rng.normal(size=(16, 16)))[0].astype(np.float32)
    assert cost(photos @ rotation) == pytest.approx(0.0, abs=1e-9)
    contracted = [cost(centre + k * (photos - centre)) for k in (0.0, 0.4, 0.8)]
    assert contracted[0] > contracted[1] > contracted[2] > 0  # all outputs alike costs most
    # Against the formula: the mean over ordered pairs i != j of the squared difference of distances.
    outputs = photos + rng.normal(scale=0.05, size=photos.shape).astype(np.float32)
    d = np.linalg.norm(photos[:, None] - photos[None], axis=-1)
    g = np.linalg.norm(outputs[:, None] - outputs[None], axis=-1)
    off = ~np.eye(len(photos), dtype=bool)
    assert cost(outputs) == pytest.approx(float(np.mean((g - d)[off] ** 2)), rel=1e-4)
    assert float(losses.descriptor_relation_mismatch(tf.constant(photos[:1]), tf.constant(photos[:1]))) == 0.0
    pred = tf.Variable(centre + 0.4 * (photos - centre))
    with tf.GradientTape() as tape:
        value = losses.descriptor_relation_mismatch(tf.constant(photos), pred)
    step = pred - 0.5 * tape.gradient(value, pred)  # a gradient step spreads the outputs out
    assert cost(step.numpy()) < cost(pred.numpy())
    def spread(x):
        return float(np.mean(np.linalg.norm(x[:, None] - x[None], axis=-1)))

    assert spread(step.numpy()) > spread(pred.numpy())


def test_lattice_excess_counts_a_grid_the_target_does_not_have():
    size, period = 64, 16
    target = _smooth_faces(2, size)
    y, x = np.mgrid[:size, :size]
    # A stride-2 checkerboard at the 32x32 stage, seen at 64: period 4, a divisor of 16.
    grid = 0.05 * np.cos(np.pi * x / 2)[..., None] * np.cos(np.pi * y / 2)[..., None]
    gridded = (target + grid).astype(np.float32)
    per_example = losses.lattice_excess(target, gridded, period)
    assert per_example.shape == (2,)
    np.testing.assert_allclose(per_example, 0.05 / 8, rtol=0.05)  # a grid of amplitude 0.05, windowed: 4 bins of a / 16
    # Its own target costs nothing, and a grid in the target is not asked of the output: only excess counts.
    np.testing.assert_allclose(losses.lattice_excess(target, target, period), 0.0, atol=1e-5)
    np.testing.assert_allclose(losses.lattice_excess(gridded, target, period), 0.0, atol=1e-5)
    # The same amplitude off the lattice (6 cycles per frame: every 10.7 px) costs far less.
    wave = np.cos(2 * np.pi * 6 * x / size) * np.cos(2 * np.pi * 6 * y / size)
    off = (target + 0.05 * wave[..., None]).astype(np.float32)
    assert float(tf.reduce_max(losses.lattice_excess(target, off, period))) < 0.2 * float(tf.reduce_min(per_example))
    # Its gradient is the grid (windowed): descending it removes the grid and nothing else.
    image = tf.constant(gridded)
    with tf.GradientTape() as tape:
        tape.watch(image)
        loss = tf.reduce_sum(losses.lattice_excess(target, image, period))
    grad = tape.gradient(loss, image).numpy().sum(-1)
    pattern = grid[..., 0] * np.outer(np.hanning(size), np.hanning(size))
    cosine = (grad * pattern).sum((1, 2)) / np.linalg.norm(grad.reshape(2, -1), axis=1) / np.linalg.norm(pattern)
    assert np.all(cosine > 0.9), cosine
    with pytest.raises(ValueError, match="multiple of period=16"):
        losses.lattice_excess(target[:, :60, :60], gridded[:, :60, :60], period)


def test_spectrum_mismatch_asks_each_ring_for_its_energy_whatever_the_phase():
    size = 64
    rng = np.random.default_rng(3)
    import cv2

    # Photo-like targets: noise blurred lightly, so fine rings hold energy.
    target = np.stack([cv2.GaussianBlur(im, (0, 0), 0.7) for im in rng.uniform(size=(2, size, size, 3)).astype(np.float32)])
    blurred = losses.gaussian_blur(tf.constant(target), 1.5)
    per_example = losses.spectrum_mismatch(target, blurred)
    assert per_example.shape == (2,)
    np.testing.assert_allclose(losses.spectrum_mismatch(target, target), 0.0, atol=1e-5)
    # Phase and direction are free: the target turned a quarter (the same energy on each ring)
    # costs next to nothing, though its pixel L1 is far larger than the blur's.
    turned = np.ascontiguousarray(np.swapaxes(target, 1, 2))
    assert float(tf.reduce_max(losses.spectrum_mismatch(target, turned))) < 0.05 * float(tf.reduce_min(per_example))
    assert np.abs(turned - target).mean() > np.abs(blurred.numpy() - target).mean()
    # Both sides cost: the target's detail missing (the blur) and detail it lacks (the blurred
    # target asked for, the sharp one given).
    assert float(tf.reduce_min(per_example)) > 1.0, per_example
    np.testing.assert_allclose(losses.spectrum_mismatch(blurred, target), per_example, rtol=1e-3)
    # Descending it from the blur gives the fine rings their energy back.
    image = tf.Variable(blurred)
    first = float(tf.reduce_sum(losses.spectrum_mismatch(target, image)))
    for _ in range(30):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(losses.spectrum_mismatch(target, image))
        image.assign_sub(0.05 * tape.gradient(loss, image))
    last = float(tf.reduce_sum(losses.spectrum_mismatch(target, image)))
    assert last < 0.5 * first, (first, last)
    # Measured: the finest octave's mean amplitude 0.008 (blur) -> 0.059 (target: 0.059).
    fine = lambda im: np.abs(np.asarray(im) - losses.gaussian_blur(tf.constant(np.asarray(im)), 1.0).numpy()).mean()
    assert fine(image.numpy()) > 3 * fine(blurred), (fine(blurred), fine(image.numpy()))
    with pytest.raises(ValueError, match="square images"):
        losses.spectrum_mismatch(target[:, :, :32], target[:, :, :32])
    with pytest.raises(ValueError, match="y_true has shape"):
        losses.spectrum_mismatch(target, target[:, :32])


def test_spectrum_rings_are_the_grid_measures_spectrum():
    """The loss's power is the grid measure's (metrics.windowed_power), its rings partition the
    bins from min_frequency to Nyquist, and a wave falls on the ring of its frequency."""
    size = 32
    rings, means = losses.radial_rings(size, 1.0 / 8.0)
    assert rings[0] == 4 and rings[-1] == 16 and means.shape == (size * size, 13)
    np.testing.assert_allclose(means.sum(axis=0), 1.0, rtol=1e-6)
    assert ((means > 0).sum(axis=1) <= 1).all()  # each bin on one ring at most
    images = _smooth_faces(2, size) + RNG.normal(0, 0.02, (2, size, size, 3)).astype(np.float32)
    ours = losses._windowed_power(tf.constant(images), np.arange(size)).numpy()
    np.testing.assert_allclose(ours, metrics.windowed_power(images.mean(-1)), rtol=1e-3,
                               atol=1e-6 * ours.max())
    y, x = np.mgrid[:size, :size]
    wave = np.repeat((0.5 + 0.2 * np.cos(2 * np.pi * 6 * x / size))[None, ..., None], 3, axis=-1).astype(np.float32)
    power = losses._windowed_power(tf.constant(wave), np.arange(size)).numpy().reshape(1, -1) @ means
    assert rings[int(np.argmax(power))] == 6
    with pytest.raises(ValueError, match="min_frequency"):
        losses.radial_rings(size, 0.6)


def _textured(size: int, cycles: float, phase: float = 0.0) -> np.ndarray:
    """``[1, size, size, 3]`` grey 0.5 with a vertical-stripe texture of amplitude 0.2 in the frame's
    left half only (``cycles`` per 16 px, shifted by ``phase`` radians): detail in one place."""
    x = np.arange(size)
    stripes = 0.2 * np.sin(2 * np.pi * cycles * x / 16 + phase)
    image = np.full((size, size), 0.5)
    image[:, : size // 2] += stripes[None, : size // 2]
    return np.repeat(image[None, ..., None], 3, axis=-1).astype(np.float32)


def test_detail_quantile_weighs_missing_detail_against_excess():
    size = 64
    target = _textured(size, cycles=4)
    blurred = losses.gaussian_blur(tf.constant(target), 2.0)  # detail missing everywhere
    flat = np.full_like(target, 0.5)  # a target with none: the textured output's detail is all excess
    cost = lambda t, o, q: float(losses.detail_mismatch(t, o, quantile=q)[0])
    assert cost(target, blurred, 0.75) == pytest.approx(1.5 * cost(target, blurred, 0.5), rel=1e-4)
    assert cost(flat, target, 0.75) == pytest.approx(0.5 * cost(flat, target, 0.5), rel=1e-4)
    # Over targets that have the detail or not at random, the cheapest constant amount of it is
    # the median at q = 0.5 (none: 3 of 5 have none) and the upper quantile above it (all of it).
    targets = [target, flat, target, flat, flat]
    scaled = lambda a: 0.5 + a * (target - 0.5)
    total = lambda a, q: sum(cost(t, scaled(a), q) for t in targets)
    amounts = np.linspace(0.0, 1.0, 11)
    best = {q: amounts[int(np.argmin([total(a, q) for a in amounts]))] for q in (0.5, 0.8)}
    assert best[0.5] <= 0.1 and best[0.8] >= 0.9, best
    # A map of quantiles weighs each pixel by its own: 0.75 everywhere is the number 0.75, and 0.75
    # on the textured left half only asks more of the missing detail there and nothing more of
    # the excess on a flat target's right half.
    everywhere = np.full((size, size), 0.75, np.float32)
    assert cost(target, blurred, everywhere) == pytest.approx(cost(target, blurred, 0.75), rel=1e-5)
    left = np.full((size, size), 0.5, np.float32)
    left[:, : size // 2] = 0.75
    assert cost(target, blurred, left) == pytest.approx(cost(target, blurred, 0.75), rel=0.1)
    moved = np.ascontiguousarray(target[:, :, ::-1])  # the detail on the right, where the map says 0.5
    assert cost(flat, moved, left) == pytest.approx(cost(flat, moved, 0.5), rel=0.1)
    assert cost(flat, moved, left) > 1.5 * cost(flat, moved, 0.75)
    with pytest.raises(ValueError, match="quantile map is"):
        cost(target, blurred, left[:32])


def test_detail_mismatch_asks_how_much_detail_where_not_its_phase():
    size = 64
    target = _textured(size, cycles=4)  # period 4 px: the finest band's
    blurred = losses.gaussian_blur(tf.constant(target), 2.0)
    shifted = _textured(size, cycles=4, phase=np.pi)  # every stripe moved by half a period
    per_example = losses.detail_mismatch(target, blurred)
    assert per_example.shape == (1,)
    np.testing.assert_allclose(losses.detail_mismatch(target, target), 0.0, atol=1e-4)
    # The blur (what averaging losses give) costs far more than the same detail out of phase,
    # which the pixel L1 punishes more than the blur.
    assert float(losses.detail_mismatch(target, shifted)[0]) < 0.1 * float(per_example[0])
    assert np.abs(shifted - target).mean() > np.abs(blurred.numpy() - target).mean()
    # Symmetric: the stripes moved to the right half (missing on the left, extra where the target
    # has none) cost about twice the blur, which only misses them.
    moved = target[:, :, ::-1]
    assert float(losses.detail_mismatch(target, moved)[0]) > 1.5 * float(per_example[0])
    # Descending it from the blur puts detail back where the target has it, and not elsewhere.
    image = tf.Variable(blurred)
    for _ in range(60):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(losses.detail_mismatch(target, image))
        image.assign_sub(20.0 * tape.gradient(loss, image))
    fine = image.numpy()[0, :, :, 0] - losses.gaussian_blur(image, 1.0).numpy()[0, :, :, 0]
    left, right = np.abs(fine[8:-8, 8:size // 2 - 8]).mean(), np.abs(fine[8:-8, size // 2 + 8:-8]).mean()
    before = np.abs(blurred.numpy()[0, :, :, 0] - losses.gaussian_blur(blurred, 1.0).numpy()[0, :, :, 0])
    assert left > 2 * before[8:-8, 8:size // 2 - 8].mean(), (left, before[8:-8, 8:size // 2 - 8].mean())
    assert right < 0.25 * left, (left, right)
    with pytest.raises(ValueError, match="bands must be increasing"):
        losses.detail_mismatch(target, target, bands=(2.0, 1.0))
    with pytest.raises(ValueError, match="quantile must be in"):
        losses.detail_mismatch(target, target, quantile=1.0)
    with pytest.raises(ValueError, match="y_true has shape"):
        losses.detail_mismatch(target, target[:, :32])
