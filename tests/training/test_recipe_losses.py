"""Tests of the recipe additions of issue 17 in training: the perceptual loss and the patch
discriminator (tiny 32x32 models, the fake encoder, a step or two on CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from normface.models import IMAGE, LANDMARKS, build_normalizer
from normface.models.discriminator import patch_discriminator
from normface.testing import synthetic
from normface.training import losses
from normface.training.config import TrainConfig
from normface.training.trainer import Trainer

SIZE, FEAT, BATCH = 32, 16, 2
QUIET = dict(log_every=0, image_every=0, eval_every=0, checkpoint_every=0)


def data(n=4):
    return synthetic.synthetic_dataset(n, SIZE, BATCH, FEAT, seed=0, shuffle=False)


def test_perceptual_distance_is_zero_for_equal_activations_and_positive_otherwise():
    rng = np.random.default_rng(0)
    acts = [tf.constant(rng.normal(size=(3, 5, 5, 4)), tf.float32), tf.constant(rng.normal(size=(3, 2, 2, 8)), tf.float32)]
    np.testing.assert_array_equal(losses.perceptual_distance(acts, acts).numpy(), np.zeros(3))
    other = [a + 0.5 for a in acts]
    np.testing.assert_allclose(losses.perceptual_distance(acts, other).numpy(), np.full(3, 0.5), rtol=1e-6)
    with pytest.raises(ValueError, match="matching"):
        losses.perceptual_distance(acts, acts[:1])


def test_perceptual_loss_is_zero_when_output_equals_target_and_its_gradients_reach_the_decoder():
    net = build_normalizer(synthetic.tiny_model_config(), synthetic.mean_landmarks(SIZE))
    activations = synthetic.fake_embed_fn().activations
    features = tf.random.stateless_normal([BATCH, FEAT], seed=[1, 2])
    out = net.model(features)
    _, same = activations(out[IMAGE], out[LANDMARKS])
    assert float(tf.reduce_max(losses.perceptual_distance(same, same))) == 0.0
    target = tf.random.stateless_uniform([BATCH, SIZE, SIZE, 3], seed=[3, 4])
    variables = net.model.get_layer("texture_cnn").trainable_variables  # the texture decoder
    with tf.GradientTape() as tape:
        out = net.model(features, training=True)
        _, generated = activations(out[IMAGE], out[LANDMARKS])
        _, wanted = activations(target, out[LANDMARKS])
        loss = tf.reduce_mean(losses.perceptual_distance(wanted, generated))
    assert float(loss) > 0
    grads = tape.gradient(loss, variables)
    assert variables and all(g is not None for g in grads)
    assert max(float(tf.reduce_max(tf.abs(g))) for g in grads) > 0


def test_trainer_with_the_perceptual_loss_needs_its_function_and_trains(tmp_path):
    config = TrainConfig(steps=2, batch_size=BATCH, lr_schedule="constant", perceptual_weight=1.0, **QUIET)
    embed = synthetic.fake_embed_fn()
    with pytest.raises(ValueError, match="perceptual_fn"):
        Trainer(synthetic.tiny_model_config(), config, synthetic.mean_landmarks(SIZE), tmp_path / "a", embed_fn=embed)
    trainer = Trainer(synthetic.tiny_model_config(), config, synthetic.mean_landmarks(SIZE), tmp_path / "b",
                      embed_fn=embed, perceptual_fn=embed.activations)
    history = trainer.fit(data())
    assert np.isfinite(history["train/perceptual"]) and history["train/perceptual"] > 0


def test_patch_discriminator_shapes_and_bad_sizes():
    d = patch_discriminator(32, (4, 8))
    assert tuple(d(tf.zeros([2, 32, 32, 3])).shape) == (2, 8, 8, 1)
    with pytest.raises(ValueError, match="divisible"):
        patch_discriminator(36, (4, 8, 8))


def test_discriminator_trains_one_step_on_tiny_inputs(tmp_path):
    config = TrainConfig(steps=1, batch_size=BATCH, lr_schedule="constant", adversarial_weight=0.1,
                         discriminator_channels=(4, 8), **QUIET)
    trainer = Trainer(synthetic.tiny_model_config(), config, synthetic.mean_landmarks(SIZE), tmp_path)
    before = [v.numpy().copy() for v in trainer.discriminator.trainable_variables]
    history = trainer.fit(data())
    after = [v.numpy() for v in trainer.discriminator.trainable_variables]
    assert any(np.abs(a - b).max() > 0 for a, b in zip(after, before))
    assert np.isfinite(history["train/discriminator"]) and np.isfinite(history["train/adversarial"])
    # The generator's objective includes the adversarial term: total = weights . terms.
    expected = (config.landmark_weight * history["train/landmark"] + history["train/texture"]
                + 0.1 * history["train/adversarial"])
    assert history["train/total"] == pytest.approx(expected, rel=1e-5)


def test_adversarial_losses_prefer_the_right_side():
    high, low = tf.fill([1, 2, 2, 1], 5.0), tf.fill([1, 2, 2, 1], -5.0)
    # D is right (real high, fake low): small D loss, large generator loss.
    assert float(losses.discriminator_adversarial(high, low)[0]) < 0.02
    assert float(losses.generator_adversarial(low)[0]) > 4.9
    assert float(losses.generator_adversarial(high)[0]) < 0.01


# --- issue 28: the picture recipe's pieces -----------------------------------------------------


def _face_landmarks():
    import json

    from normface.utils import paths

    card = paths.REPO_ROOT / "normface" / "serving" / "pretrained" / "normface128" / "normface.json"
    return np.asarray(json.loads(card.read_text())["mean_landmarks"], np.float64)


def test_face_and_hair_mask_covers_face_and_hair_not_the_corners():
    from normface.faces.masks import face_and_hair_mask

    marks = _face_landmarks()
    mask = face_and_hair_mask(marks, 128)
    nose = np.round(marks[30]).astype(int)
    assert mask[nose[1], nose[0]] == 1.0
    brow_top = int(marks[17:27, 1].min())
    assert mask[max(brow_top - 20, 0), nose[0]] > 0.9  # hair above the forehead
    for y, x in ((2, 2), (2, 125), (125, 2), (125, 125)):
        assert mask[y, x] == 0.0


def test_pixel_weighted_texture_l1():
    rng = np.random.default_rng(0)
    target = rng.uniform(size=(2, 8, 8, 3)).astype(np.float32)
    output = target.copy()
    output[:, :, :4] += 0.5  # error only in the left half
    left = np.zeros((8, 8), np.float32)
    left[:, :4] = 1.0
    plain = losses.TextureL1()
    assert float(plain(target, output)) == pytest.approx(0.25)
    assert float(losses.TextureL1(np.ones((8, 8)))(target, output)) == pytest.approx(0.25)
    assert float(losses.TextureL1(1.0 - left)(target, output)) == pytest.approx(0.0)  # the error where the weight is 0
    assert float(losses.TextureL1(left)(target, output)) == pytest.approx(0.5)  # all the weight on it (mean 1)


def test_calm_background_target_keeps_the_face_and_blurs_the_rest(tmp_path):
    from normface.training.losses import gaussian_blur

    config = TrainConfig(steps=1, batch_size=BATCH, lr_schedule="constant", calm_background_sigma=3.0, **QUIET)
    trainer = Trainer(synthetic.tiny_model_config(), config, synthetic.mean_landmarks(SIZE), tmp_path)
    batch = next(iter(data()))
    target = trainer._training_target(batch).numpy()
    texture = batch["texture"].numpy()
    inside, outside = trainer.face_mask == 1.0, trainer.face_mask == 0.0
    assert inside.any() and outside.any()
    np.testing.assert_allclose(target[:, inside], texture[:, inside], atol=1e-6)
    blurred = gaussian_blur(tf.constant(texture), 3.0).numpy()
    np.testing.assert_allclose(target[:, outside], blurred[:, outside], atol=1e-6)
    assert np.abs(blurred - texture)[:, outside].mean() > 0.01  # the synthetic texture differs from its blur (measured 0.024)
    plain = Trainer(synthetic.tiny_model_config(), TrainConfig(steps=1, batch_size=BATCH, **QUIET),
                    synthetic.mean_landmarks(SIZE), tmp_path / "plain")
    np.testing.assert_array_equal(plain._training_target(batch).numpy(), texture)


def test_transfer_fits_resize_stages_to_a_transposed_donor():
    import dataclasses

    from normface.models import build_normalizer
    from normface.models.transfer import transfer_weights

    config = synthetic.tiny_model_config()
    mean = synthetic.mean_landmarks(SIZE)
    donor = build_normalizer(config, mean).model
    features = np.random.default_rng(0).normal(size=(64, config.feature_dim)).astype(np.float32)
    resize = dataclasses.replace(config, upsampling="resize")
    fitted, fresh = build_normalizer(resize, mean).model, build_normalizer(resize, mean).model
    info = transfer_weights(donor, fitted, features[:48])
    assert info["fitted"] == [f"texture_cnn/up{i}" for i in range(4)]
    assert "texture_cnn/to_rgb" in info["copied"] and "landmark_mlp/offsets" in info["copied"]
    held = features[48:]
    want = donor(held)["texture"].numpy()
    err_fitted = np.abs(fitted(held)["texture"].numpy() - want).mean()
    err_fresh = np.abs(fresh(held)["texture"].numpy() - want).mean()
    assert err_fitted < 0.5 * err_fresh, (err_fitted, err_fresh)
    np.testing.assert_allclose(fitted(held)["landmarks"].numpy(), donor(held)["landmarks"].numpy(), atol=1e-5)
    # The same architecture: everything copied, the same outputs.
    twin = build_normalizer(config, mean).model
    assert transfer_weights(donor, twin, features)["fitted"] == []
    np.testing.assert_allclose(twin(held)["texture"].numpy(), want, atol=1e-6)


def test_a_refiner_warm_started_from_an_unrefined_donor_starts_at_the_donors_output():
    import dataclasses

    from normface.models import build_normalizer
    from normface.models.transfer import transfer_weights

    config = synthetic.tiny_model_config()
    mean = synthetic.mean_landmarks(SIZE)
    donor = build_normalizer(config, mean).model
    features = np.random.default_rng(1).normal(size=(16, config.feature_dim)).astype(np.float32)
    refined = build_normalizer(dataclasses.replace(config, refine_channels=(4, 4)), mean).model
    info = transfer_weights(donor, refined, features)
    assert info["new"] == ["texture_cnn/refine0", "texture_cnn/refine1", "texture_cnn/refine_rgb"]
    assert info["fitted"] == []
    np.testing.assert_allclose(refined(features)["texture"].numpy(), donor(features)["texture"].numpy(), atol=1e-6)
    # The refiner is live: a non-zero correction changes the texture.
    layer = refined.get_layer("texture_cnn").get_layer("refine_rgb")
    layer.set_weights([w + 0.1 for w in layer.get_weights()])
    assert np.abs(refined(features)["texture"].numpy() - donor(features)["texture"].numpy()).mean() > 0.05
