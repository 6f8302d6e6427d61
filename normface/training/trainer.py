"""The training loop: custom train step under tf.distribute, checkpoints with resume, TensorBoard,
validation by the identity metric (paper Sec. 3.3, 7.2).

Why a custom loop rather than ``model.fit``: the step has two shapes. Without the identity loss it
runs only the warp-free decoder on stored encoder features (landmark MSE + texture L1: the paper's
saving); with it, the full model (warp included) and the frozen encoder on the generated image.
Validation must also run the model and the encoder on validation photos and select the best
checkpoint by the identity metric, not by pixel loss (pixel L1 on held-out data rises long before
identity stops improving).

Layout of ``model_dir``::

    config.json             model + train config and data metadata (refuses a mismatched resume)
    history.json            the latest logged losses and validation metrics (for the model card)
    checkpoints/ckpt-<step> model, optimizer, step, best score, input iterator (CheckpointManager)
    best/ckpt-<step>        the model at the best validation identity metric; best.json says which
    logs/train, logs/validation   TensorBoard event files

A run restarted on the same ``model_dir`` (after SIGKILL or anything else) resumes from the
latest checkpoint, step counter, optimizer state and input position included.

The TPU strategy path is implemented but has never run here (no TPU): treat it as untested.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from normface.training import losses
from normface.training.losses import gaussian_blur
from normface.utils import io_utils
from normface.models import IMAGE, LANDMARKS, TEXTURE, WARP, ModelConfig, build_normalizer
from normface.models.discriminator import discriminator_features, patch_discriminator
from normface.faces.masks import face_and_hair_mask, hull_mask
from normface.training.config import TrainConfig
from normface.data import schema
from normface.training import summaries
from normface.training.schedule import learning_rate_schedule
from normface.training.strategy import is_chief, make_strategy, worker_id
from normface.training.checkpoints import (BEST_DIR, BEST_FILE, JUDGE_PREFIX, LATEST_DIR, checkpoint_step,
                                          find_checkpoint, initialize_from, selection_score)

# embed_fn(images [b, S, S, 3] float32 in [0, 1], landmarks [b, 68, 2] (x, y)) -> descriptors [b, D];
# differentiable in the images. Built by the caller from the frozen encoder (normface.encoders).
EmbedFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
# perceptual_fn(images, landmarks) -> (descriptors [b, D], [activations]): one encoder pass for the
# perceptual loss (and the identity loss, when both are on). normface.encoders' perceptual_fn.
PerceptualFn = Callable[[tf.Tensor, tf.Tensor], tuple]

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
DEFAULT_EVAL_BATCHES = 8
PANEL_EXAMPLES = 3
DETAIL_FACE_EDGE_PX = 2.0  # the soft edge of the face-only detail quantile
INIT_SAMPLE_BATCHES = 8  # training batches whose features fit a donor's stages of another upsampling


# TrainConfig fields a resumed run may not change.
TRAJECTORY_FIELDS = ("steps", "batch_size", "learning_rate", "lr_schedule", "warmup_steps", "decay_steps",
                     "decay_rate", "landmark_weight", "texture_weight", "identity_weight", "identity_loss",
                     "identity_relation_weight",
                     "perceptual_weight", "perceptual_layers", "adversarial_weight", "feature_matching_weight",
                     "background_weight", "calm_background_sigma", "lattice_weight", "lattice_period",
                     "lattice2_weight", "lattice2_period", "geometry_lattice_weight", "geometry_lattice_period",
                     "landmark_spread_weight", "texture_spread_weight", "texture_deviation_weight",
                     "target_exaggeration", "target_exaggeration_sigma", "exaggerate_perceptual",
                     "detail_weight", "detail_quantile", "detail_quantile_region", "detail_bands",
                     "spectrum_weight")


def detail_quantile_map(config: TrainConfig, mean_landmarks: np.ndarray, size: int) -> float | np.ndarray:
    """The detail loss's quantile: ``config.detail_quantile`` over the whole frame, or for
    ``detail_quantile_region="face"`` an ``[size, size]`` float32 map, that quantile inside the hull
    of ``mean_landmarks`` (``[68, 2]`` (x, y) pixels of the texture frame; edge softened by a 2 px
    Gaussian) and 0.5 (the median) outside it."""
    q = config.detail_quantile
    if config.detail_quantile_region == "frame":
        return q
    face = hull_mask(mean_landmarks, size, blur_sigma=DETAIL_FACE_EDGE_PX)
    return (0.5 + (q - 0.5) * face).astype(np.float32)


class Trainer:
    """Trains a normalizer on batched ``tf.data`` dicts of records.

    Each element of the datasets is a dict of batched tensors (global batch ``batch_size``):
    ``features`` ``[b, F]``, ``landmarks`` ``[b, 68, 2]`` ((x, y) pixels), ``texture`` and ``image``
    ``[b, S, S, 3]`` in [0, 1], and ``descriptor`` ``[b, D]`` (the encoder's descriptor of the input;
    needed by the identity loss and metric, else computed with ``embed_fn`` from image + landmarks).

    Args:
      model_config, train_config: what to build and how to train.
      mean_landmarks: ``[68, 2]`` (x, y) pixels of the texture frame (from the records' metadata).
      model_dir: checkpoints, logs and config (see the module docstring).
      embed_fn: see :data:`EmbedFn`; required when ``identity_weight > 0``; without it validation
        selects the best checkpoint by validation loss instead of the identity metric. Build it
        inside ``strategy.scope()`` when its network has variables.
      perceptual_fn: see :data:`PerceptualFn`; required when ``perceptual_weight > 0``.
      loss_embed_fn: the identity loss's embedding when it differs from the metric's ``embed_fn``
        (the encoder in ``encoder_dtype``); default ``embed_fn``.
      strategy: a strategy (else made from ``train_config.strategy``).
      metadata: JSON-able facts recorded in ``config.json`` (records, encoder id, template...).
      scorer: extra validation metrics, ``scorer(model) -> {name: float}`` run at each validation (logged as ``judge/<name>``), e.g. an independent recognizer's cross-photo
        identity on validation people. It sees the model only after the step's update and returns
        plain floats: nothing it computes reaches a loss or a gradient. With its metrics present,
        :func:`normface.training.checkpoints.selection_score` chooses the best checkpoint by them.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        mean_landmarks: np.ndarray,
        model_dir: str | os.PathLike,
        embed_fn: EmbedFn | None = None,
        strategy: tf.distribute.Strategy | None = None,
        metadata: dict[str, Any] | None = None,
        perceptual_fn: PerceptualFn | None = None,
        loss_embed_fn: EmbedFn | None = None,
        scorer: Callable[[keras.Model], dict[str, float]] | None = None,
    ):
        train_config.validate()
        if train_config.geometry_lattice_weight > 0 and model_config.plain_cnn:
            raise ValueError("geometry_lattice_weight > 0 needs a texture and a warp (not plain_cnn)")
        if train_config.uses_identity and embed_fn is None:
            raise ValueError("identity_weight or identity_relation_weight > 0 needs an embed_fn (the frozen encoder)")
        if train_config.perceptual_weight > 0 and perceptual_fn is None:
            raise ValueError("perceptual_weight > 0 needs a perceptual_fn (the frozen encoder's activations)")
        if train_config.mixed_precision:
            model_config = ModelConfig.from_dict({**model_config.to_dict(), "dtype_policy": train_config.mixed_precision})
        model_config.validate()
        if train_config.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.model_config, self.config = model_config, train_config
        self.model_dir = Path(model_dir)
        self.embed_fn = embed_fn
        self.perceptual_fn = perceptual_fn
        self.loss_embed_fn = loss_embed_fn or embed_fn
        self.scorer = scorer
        self.metadata = dict(metadata or {})
        # The export rebuilds the model from config.json: it needs the mean landmarks.
        self.metadata["mean_landmarks"] = np.asarray(mean_landmarks, np.float32).tolist()
        self.mean_landmarks = np.asarray(mean_landmarks, np.float32)
        self.strategy = strategy or make_strategy(train_config.strategy)
        self.chief = is_chief(self.strategy)
        keras.utils.set_random_seed(train_config.seed)
        with self.strategy.scope():
            self.net = build_normalizer(model_config, mean_landmarks)
            optimizer = keras.optimizers.Adam(learning_rate_schedule(train_config))
            if train_config.mixed_precision == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
            # Created now, so a checkpoint restores into them rather than into deferred slots.
            self.optimizer.build(self.net.model.trainable_variables)
            self.discriminator, self.d_optimizer = None, None
            if train_config.uses_discriminator:
                key_size = model_config.output_size
                self.discriminator = patch_discriminator(key_size, train_config.discriminator_channels)
                self.discriminator_features = discriminator_features(self.discriminator)
                self.d_optimizer = keras.optimizers.Adam(train_config.discriminator_learning_rate, beta_1=0.5)
                self.d_optimizer.build(self.discriminator.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            # Best validation score so far (higher is better), kept across restarts.
            self.best_score = tf.Variable(-np.inf, dtype=tf.float64, trainable=False, name="best_score")
        self.landmark_loss = losses.LandmarkMSE(model_config.output_size)
        self.texture_loss = losses.TextureL1()
        # Face and hair of the texture frame (the mean landmarks): what the face-weighted loss and
        # the calm-background targets keep (issue 28); validation always scores the plain L1.
        self.face_mask = face_and_hair_mask(mean_landmarks, model_config.output_size).astype(np.float32)
        bg = train_config.background_weight
        self.train_texture_loss = (losses.TextureL1(bg + (1.0 - bg) * self.face_mask) if bg != 1.0
                                   else self.texture_loss)
        self.identity_loss = losses.IdentityLoss(train_config.identity_loss)
        self.detail_quantile = detail_quantile_map(train_config, mean_landmarks, model_config.output_size)
        self._train_fn = None
        self._fns: dict[str, Any] = {}
        self.history: dict[str, float] = {}

    # ------------------------------------------------------------------------------------------
    # Losses.
    # ------------------------------------------------------------------------------------------
    @property
    def _target_key(self) -> str:
        """What the RGB decoder is compared with: the texture, or the image for the plain CNN."""
        # The record key the decoder's output is compared with (same name as the model output).
        return schema.TEXTURE if self.net.has_texture else schema.IMAGE

    def _training_target(self, batch: dict[str, tf.Tensor]) -> tf.Tensor:
        """The decoder's target in training: the texture (or image), its background outside the
        face and hair blurred when ``calm_background_sigma`` > 0, and inside them each target's
        deviation from the batch's mean target (its Gaussian low-pass when
        ``target_exaggeration_sigma`` > 0) scaled by ``target_exaggeration`` when it is not 1."""
        target, exaggeration = self._target_parts(batch)
        return target if exaggeration is None else target + exaggeration

    def _target_parts(self, batch: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor | None]:
        """(the target with its calm background, what ``target_exaggeration`` adds to it or None);
        ``[b, S, S, 3]`` each, in the frame of the decoder's target. The target is the batch's own
        tensor when neither option is on."""
        target = batch[self._target_key]
        sigma, scale = self.config.calm_background_sigma, self.config.target_exaggeration
        if sigma <= 0 and scale == 1.0:
            return target, None
        target = tf.cast(target, tf.float32)
        mask = tf.constant(self.face_mask)[None, :, :, None]
        if sigma > 0:
            with tf.name_scope("calm_background"):
                target = mask * target + (1.0 - mask) * gaussian_blur(target, sigma)
        if scale == 1.0:
            return target, None
        with tf.name_scope("target_exaggeration"):
            # The batch's mean target stands in for the mean face (each replica's own batch).
            deviation = target - tf.reduce_mean(target, axis=0, keepdims=True)
            if self.config.target_exaggeration_sigma > 0:
                # Only the deviation's coarse part (tone, shape, shading) scaled: the fine detail
                # stays the target's own amount.
                deviation = gaussian_blur(deviation, self.config.target_exaggeration_sigma)
            return target, (scale - 1.0) * mask * deviation

    def _perceptual_photo(self, batch: dict[str, tf.Tensor], exaggeration: tf.Tensor | None) -> tf.Tensor:
        """The photo the perceptual term compares the output with: the batch's image, plus the
        target exaggeration placed on the photo's landmarks when ``exaggerate_perceptual`` is on
        (the warp is linear in the texture: the exaggerated texture placed equals the photo plus
        the exaggeration placed, and the photo keeps its own pixels)."""
        photo = batch[schema.IMAGE]
        if exaggeration is None or not self.config.exaggerate_perceptual:
            return photo
        with tf.name_scope("perceptual_exaggeration"):
            if self.net.has_texture:
                (exaggeration,) = self._placed([exaggeration], batch[schema.LANDMARKS])
            return tf.cast(photo, tf.float32) + exaggeration

    def _average(self, per_example: tf.Tensor) -> tf.Tensor:
        # Divides by the global batch, so summing the replicas' values gives the batch mean.
        return tf.nn.compute_average_loss(per_example, global_batch_size=self.config.batch_size)

    def _loss_terms(self, batch: dict[str, tf.Tensor], training: bool) -> tuple[dict[str, tf.Tensor], dict]:
        """Per-replica loss terms (each already divided by the global batch) and the model outputs."""
        cfg = self.config
        with tf.name_scope("losses"):
            if cfg.uses_warp:
                out = self.net.model(batch[schema.FEATURES], training=training)
            else:
                # The paper's saving: no warp, no encoder, just the decoders on stored features.
                out = self.net.decoder(batch[schema.FEATURES], training=training)
            key = self._target_key
            target, exaggeration = self._target_parts(batch) if training else (batch[key], None)
            if exaggeration is not None:
                target = target + exaggeration
            texture_loss = self.train_texture_loss if training else self.texture_loss
            terms = {
                "landmark": self._average(self.landmark_loss.call(batch[schema.LANDMARKS], out[LANDMARKS])),
                "texture": self._average(texture_loss.call(target, out[key])),
            }
            total = cfg.landmark_weight * terms["landmark"] + cfg.texture_weight * terms["texture"]
            if cfg.landmark_spread_weight > 0:
                # A batch statistic: each replica's own, averaged over replicas like a per-example term.
                spread = losses.landmark_spread_mismatch(batch[schema.LANDMARKS], out[LANDMARKS],
                                                         self.model_config.output_size)
                terms["landmark_spread"] = self._average(tf.fill(tf.shape(out[LANDMARKS])[:1], spread))
                total += cfg.landmark_spread_weight * terms["landmark_spread"]
            if cfg.texture_spread_weight > 0:
                spread = losses.texture_spread_mismatch(target, out[key], pixel_weights=self.face_mask)
                terms["texture_spread"] = self._average(tf.fill(tf.shape(out[LANDMARKS])[:1], spread))
                total += cfg.texture_spread_weight * terms["texture_spread"]
            if cfg.texture_deviation_weight > 0:
                terms["texture_deviation"] = self._average(
                    losses.texture_deviation_mismatch(target, out[key], pixel_weights=self.face_mask))
                total += cfg.texture_deviation_weight * terms["texture_deviation"]
            for name, weight, period in (("lattice", cfg.lattice_weight, cfg.lattice_period),
                                         ("lattice2", cfg.lattice2_weight, cfg.lattice2_period)):
                if weight > 0:
                    terms[name] = self._average(losses.lattice_excess(target, out[key], period))
                    total += weight * terms[name]
            if cfg.geometry_lattice_weight > 0:
                placed_target, placed_out = self._placed([target, out[key]], out[LANDMARKS])
                terms["geometry_lattice"] = self._average(
                    losses.lattice_excess(placed_target, placed_out, cfg.geometry_lattice_period))
                total += cfg.geometry_lattice_weight * terms["geometry_lattice"]
            if cfg.detail_weight > 0:
                terms["detail"] = self._average(losses.detail_mismatch(target, out[key], bands=cfg.detail_bands,
                                                                      quantile=self.detail_quantile))
                total += cfg.detail_weight * terms["detail"]
            if cfg.spectrum_weight > 0:
                terms["spectrum"] = self._average(losses.spectrum_mismatch(target, out[key]))
                total += cfg.spectrum_weight * terms["spectrum"]
            generated = None
            if cfg.perceptual_weight > 0:
                generated, activations = self.perceptual_fn(out[IMAGE], out[LANDMARKS])
                _, target_activations = self.perceptual_fn(self._perceptual_photo(batch, exaggeration),
                                                           batch[schema.LANDMARKS])
                terms["perceptual"] = self._average(losses.perceptual_distance(target_activations, activations))
                total += cfg.perceptual_weight * terms["perceptual"]
            if cfg.uses_identity:
                if generated is None:
                    generated = self.loss_embed_fn(out[IMAGE], out[LANDMARKS])
                if cfg.identity_weight > 0:
                    terms["identity"] = self._average(self.identity_loss.call(batch[schema.DESCRIPTOR], generated))
                    total += cfg.identity_weight * terms["identity"]
                if cfg.identity_relation_weight > 0:
                    # A batch statistic, each replica's own (as the landmark spread's).
                    relation = losses.descriptor_relation_mismatch(batch[schema.DESCRIPTOR], generated)
                    terms["identity_relation"] = self._average(tf.fill(tf.shape(generated)[:1], relation))
                    total += cfg.identity_relation_weight * terms["identity_relation"]
            if cfg.uses_discriminator:
                fake = self.discriminator_features(out[key], training=training)
                if cfg.adversarial_weight > 0:
                    terms["adversarial"] = self._average(losses.generator_adversarial(fake[-1]))
                    total += cfg.adversarial_weight * terms["adversarial"]
                if cfg.feature_matching_weight > 0:
                    real = self.discriminator_features(target, training=training)
                    terms["feature_matching"] = self._average(losses.perceptual_distance(real[:-1], fake[:-1]))
                    total += cfg.feature_matching_weight * terms["feature_matching"]
            terms["total"] = total
            return terms, out

    def _placed(self, textures: list[tf.Tensor], landmarks: tf.Tensor) -> list[tf.Tensor]:
        """Each ``[b, S, S, 3]`` texture (of the texture frame) placed on ``landmarks`` ``[b, 68, 2]``
        by the model's own warp, float32; the landmarks' gradient stopped (what is placed answers
        for itself, the geometry does not move to flatter it). One warp call for all of them."""
        with tf.name_scope("placed"):
            b = tf.shape(landmarks)[0]
            landmarks = tf.tile(tf.stop_gradient(tf.cast(landmarks, tf.float32)), [len(textures), 1, 1])
            source = tf.broadcast_to(tf.constant(self.mean_landmarks)[None], tf.shape(landmarks))
            stacked = tf.concat([tf.cast(t, tf.float32) for t in textures], axis=0)
            placed = self.net.model.get_layer(WARP)([stacked, source, landmarks])
            return [placed[i * b:(i + 1) * b] for i in range(len(textures))]

    def _replica_train_step(self, batch):
        variables = self.net.model.trainable_variables
        with tf.GradientTape() as tape:
            terms, out = self._loss_terms(batch, training=True)
            loss = terms["total"]
            if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
                loss = self.optimizer.scale_loss(loss)
        grads = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        if self.config.uses_discriminator:
            # The discriminator's step sees the same batch: real targets against the (fixed) decoded ones.
            d_variables = self.discriminator.trainable_variables
            with tf.GradientTape() as d_tape:
                real = self.discriminator(self._training_target(batch), training=True)
                fake = self.discriminator(tf.stop_gradient(out[self._target_key]), training=True)
                d_loss = self._average(losses.discriminator_adversarial(real, fake))
            self.d_optimizer.apply_gradients(zip(d_tape.gradient(d_loss, d_variables), d_variables))
            terms = {**terms, "discriminator": d_loss}
        return terms

    def _make_train_fn(self):
        strategy = self.strategy

        @tf.function
        def train_fn(iterator):
            with tf.name_scope("train_step"):
                per_replica = strategy.run(self._replica_train_step, args=(next(iterator),))
                self.step.assign_add(1)
                return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}

        return train_fn

    # ------------------------------------------------------------------------------------------
    # Validation.
    # ------------------------------------------------------------------------------------------
    def _replica_eval_step(self, batch):
        """Sums of per-example validation losses and the example count (no warp)."""
        out = self.net.decoder(batch[schema.FEATURES], training=False)
        key = self._target_key
        lm = self.landmark_loss.call(batch[schema.LANDMARKS], out[LANDMARKS])
        tex = self.texture_loss.call(batch[key], out[key])
        total = self.config.landmark_weight * lm + self.config.texture_weight * tex
        count = tf.cast(tf.shape(lm)[0], tf.float32)
        return {"landmark": tf.reduce_sum(lm), "texture": tf.reduce_sum(tex), "total": tf.reduce_sum(total),
                "count": count}

    def _replica_identity_step(self, batch):
        """Descriptor distances between inputs and generated images, and the output's pixel L1."""
        out = self.net.model(batch[schema.FEATURES], training=False)
        if schema.DESCRIPTOR in batch:
            target = batch[schema.DESCRIPTOR]
        else:
            target = self.embed_fn(batch[schema.IMAGE], batch[schema.LANDMARKS])
        generated = self.embed_fn(out[IMAGE], out[LANDMARKS])
        pixel_l1 = self.texture_loss.call(batch[schema.IMAGE], out[IMAGE])
        return losses.descriptor_distance(target, generated), pixel_l1

    def _cached_fn(self, name: str, replica_fn, combine: str):
        """``replica_fn`` on every replica, its outputs summed (``combine="sum"``) or concatenated
        along the batch (``"gather"``) across replicas and workers: one tf.function, traced once."""
        if name not in self._fns:
            strategy = self.strategy

            def run(batch):
                out = strategy.run(replica_fn, args=(batch,))
                if combine == "sum":
                    return tf.nest.map_structure(lambda v: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None), out)
                return tf.nest.map_structure(lambda v: strategy.gather(v, axis=0), out)

            self._fns[name] = tf.function(run)
        return self._fns[name]

    def _eval_batches(self, dataset: tf.data.Dataset, examples: int = 0) -> int:
        # A dataset of known size is never read past its end: evaluating 16 faces 8 times over
        # only costs time.
        n = int(dataset.cardinality())
        if examples:
            wanted = max(1, -(-examples // self.config.batch_size))
        else:
            wanted = self.config.eval_batches or (n if n > 0 else DEFAULT_EVAL_BATCHES)
        return min(wanted, n) if n > 0 else wanted

    def _distributed_batches(self, dataset: tf.data.Dataset, count: int):
        # Repeated, so every worker gets a batch on every one of the ``count`` collective steps.
        iterator = iter(self.strategy.experimental_distribute_dataset(dataset.repeat()))
        for _ in range(count):
            yield next(iterator)

    def evaluate(self, dataset: tf.data.Dataset) -> dict[str, float]:
        """Mean validation losses over ``eval_batches`` batches (decoder only, no warp)."""
        fn = self._cached_fn("eval", self._replica_eval_step, "sum")
        sums: dict[str, float] = {}
        for batch in self._distributed_batches(dataset, self._eval_batches(dataset)):
            for k, v in fn(batch).items():
                sums[k] = sums.get(k, 0.0) + float(v)
        count = max(sums.pop("count", 0.0), 1.0)
        return {k: v / count for k, v in sums.items()}

    def evaluate_identity(self, dataset: tf.data.Dataset) -> dict[str, float]:
        """Runs model + encoder on validation examples: identity metric and output pixel L1."""
        if self.embed_fn is None:
            raise ValueError("evaluate_identity needs an embed_fn")
        fn = self._cached_fn("identity", self._replica_identity_step, "gather")
        metric = losses.IdentityMetric()
        l1_sum, count = 0.0, 0
        batches = self._eval_batches(dataset, self.config.identity_eval_examples)
        for batch in self._distributed_batches(dataset, batches):
            distances, pixel_l1 = fn(batch)
            metric.update_distances(distances)
            l1_sum += float(tf.reduce_sum(pixel_l1))
            count += int(tf.size(pixel_l1))
        result = {k: float(v) for k, v in metric.result().items()}
        return {"within": result["within"], "median": result["median"], "pixel_l1": l1_sum / max(count, 1)}

    # ------------------------------------------------------------------------------------------
    # Checkpoints and bookkeeping.
    # ------------------------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        """``model_dir/name`` on the chief; a per-worker scratch folder elsewhere (multi-worker
        saves are collective: every worker writes, only the chief's copy is kept)."""
        if self.chief:
            return self.model_dir / name
        return self.model_dir / f"tmp_{worker_id(self.strategy)}" / name

    def _write_config(self) -> None:
        record = {"model": self.model_config.to_dict(), "train": self.config.to_dict(), "metadata": self.metadata}
        path = self.model_dir / CONFIG_FILE
        if path.is_file():
            old = json.loads(path.read_text())
            if old.get("model") != record["model"]:
                raise ValueError(
                    f"model_dir {self.model_dir} holds a different model ({path}); use another --model_dir"
                )
            # A resumed run must follow the same optimization (a new --steps would bend the
            # learning-rate schedule mid-run, a new loss weight would change the objective).
            # A field the older run's config lacks (an option added since) had its default then.
            old_train = {**TrainConfig().to_dict(), **old.get("train", {})}
            changed = sorted(k for k in TRAJECTORY_FIELDS if old_train.get(k) != record["train"].get(k))
            if changed:
                raise ValueError(f"model_dir {self.model_dir} was trained with other {', '.join(changed)} "
                                 f"({path}); use the same flags or another --model_dir")
        if self.chief:
            io_utils.write_bytes_atomic(path, json.dumps(record, indent=2, sort_keys=True).encode())

    def _check_dataset(self, dataset: tf.data.Dataset, name: str, identity: bool = False) -> None:
        spec = dataset.element_spec
        if not isinstance(spec, dict):
            raise ValueError(f"{name} must yield dicts of tensors, got {spec}")
        need = {schema.FEATURES, schema.LANDMARKS, self._target_key}
        if identity:
            need = {schema.FEATURES, schema.LANDMARKS, schema.IMAGE}
        if self.config.uses_identity and not identity:
            need.add(schema.DESCRIPTOR)
        if self.config.perceptual_weight > 0 and not identity:
            need.add(schema.IMAGE)
        missing = need - set(spec)
        if missing:
            raise ValueError(f"{name} lacks {sorted(missing)} (has {sorted(spec)})")
        batch = spec[schema.FEATURES].shape[0]
        if batch is not None and batch != self.config.batch_size:
            raise ValueError(f"{name} is batched by {batch}, but batch_size is {self.config.batch_size}")
        dim = spec[schema.FEATURES].shape[-1]
        if dim is not None and dim != self.model_config.feature_dim:
            raise ValueError(f"{name} has {dim}-D features, but the model's feature_dim is {self.model_config.feature_dim}")

    def _score(self, metrics: dict[str, float]) -> float:
        return selection_score(metrics)

    def restore_best(self) -> int:
        """Loads the best checkpoint's weights into the model (else the latest); returns its step."""
        chosen = find_checkpoint(self.model_dir, "best")
        if chosen:
            tf.train.Checkpoint(model=self.net.model).restore(chosen).expect_partial()
            return checkpoint_step(chosen)
        raise FileNotFoundError(f"no checkpoint under {self.model_dir}")

    # ------------------------------------------------------------------------------------------
    # The loop.
    # ------------------------------------------------------------------------------------------
    def fit(
        self,
        train_dataset: tf.data.Dataset,
        validation_dataset: tf.data.Dataset | None = None,
        identity_dataset: tf.data.Dataset | None = None,
        max_steps: int | None = None,
        init_from: str | None = None,
    ) -> dict[str, float]:
        """Trains until ``train_config.steps`` (or ``max_steps``, to stop early), resuming from the
        latest checkpoint in ``model_dir``. A fresh run with ``init_from`` (another run's folder, or
        a packed model) starts from its best weights (a fine-tuning phase: new optimizer, step 0).
        ``identity_dataset`` (default: the validation set) feeds the identity metric that picks the
        best checkpoint; with a ``descriptor`` key the output is scored against that descriptor
        (e.g. another photo's: cross-photo identity).
        Returns the last logged losses and validation metrics (``train/*``, ``validation/*``,
        ``identity/*``, ``best/*``)."""
        cfg = self.config
        self._check_dataset(train_dataset, "train_dataset")
        if validation_dataset is not None:
            self._check_dataset(validation_dataset, "validation_dataset")
        if identity_dataset is None and validation_dataset is not None and schema.IMAGE in validation_dataset.element_spec:
            identity_dataset = validation_dataset
        if identity_dataset is not None:
            self._check_dataset(identity_dataset, "identity_dataset", identity=True)
        self._write_config()
        iterator = iter(self.strategy.experimental_distribute_dataset(train_dataset.repeat()))
        ckpt = tf.train.Checkpoint(model=self.net.model, optimizer=self.optimizer, step=self.step,
                                   best_score=self.best_score)
        if self.discriminator is not None:
            ckpt.discriminator, ckpt.d_optimizer = self.discriminator, self.d_optimizer
        if cfg.checkpoint_input and not isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            # Multi-worker: each worker reads its own shard, the chief's position means nothing to
            # the others; they restart their input instead.
            ckpt.iterator = iterator
        manager = tf.train.CheckpointManager(ckpt, self._dir(LATEST_DIR), cfg.max_checkpoints)
        best_manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(model=self.net.model, step=self.step), self._dir(BEST_DIR), max_to_keep=1
        )
        if manager.latest_checkpoint:
            ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
            logging.info("resumed from %s at step %d", manager.latest_checkpoint, int(self.step.numpy()))
        elif init_from:
            # Feature vectors of a few training batches: a donor of another upsampling is fitted on them.
            sample = np.concatenate([b[schema.FEATURES].numpy() for b in train_dataset.take(INIT_SAMPLE_BATCHES)])
            logging.info("initialized the model from %s", initialize_from(self.net.model, init_from, sample))
        writers = self._writers()
        panel_batch = self._panel_batch(validation_dataset or train_dataset)
        if self._train_fn is None:
            self._train_fn = self._make_train_fn()
        last_stop = min(cfg.steps, max_steps or cfg.steps)
        step = int(self.step.numpy())
        sums: dict[str, float] = {}
        window_steps, window_start = 0, time.perf_counter()
        while step < last_stop:
            terms = self._train_fn(iterator)
            step = int(self.step.numpy())
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            window_steps += 1
            if not np.isfinite(float(terms["total"])):
                raise FloatingPointError(f"training loss is {float(terms['total'])} at step {step}")
            final = step == last_stop
            if (cfg.log_every and step % cfg.log_every == 0) or final:  # final: losses for the model card
                rate = window_steps * cfg.batch_size / max(time.perf_counter() - window_start, 1e-9)
                means = {k: v / window_steps for k, v in sums.items()}
                self._log_train(writers, step, means, rate)
                sums, window_steps, window_start = {}, 0, time.perf_counter()
            if cfg.image_every and (step % cfg.image_every == 0 or final):
                self._write_panel(writers, step, panel_batch)
            if validation_dataset is not None and cfg.eval_every and (step % cfg.eval_every == 0 or final):
                self._validate(writers, step, validation_dataset, identity_dataset, best_manager)
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or final:
                manager.save(checkpoint_number=step)
                if self.chief:
                    record = {"step": step, **self.history}
                    io_utils.write_bytes_atomic(self.model_dir / HISTORY_FILE, json.dumps(record, indent=2).encode())
        for writer in writers.values():
            writer.flush()
        if not self.chief:
            shutil.rmtree(self.model_dir / f"tmp_{worker_id(self.strategy)}", ignore_errors=True)
        return dict(self.history)

    def _writers(self) -> dict[str, Any]:
        if not self.chief:
            return {"train": tf.summary.create_noop_writer(), "validation": tf.summary.create_noop_writer()}
        return {k: tf.summary.create_file_writer(str(self.model_dir / "logs" / k)) for k in ("train", "validation")}

    def _panel_batch(self, dataset: tf.data.Dataset) -> dict[str, tf.Tensor] | None:
        """A few fixed examples for the image summaries (the first batch of ``dataset``)."""
        if not self.chief or not self.config.image_every:
            return None
        batch = next(iter(dataset.take(1)))
        return {k: v[:PANEL_EXAMPLES] for k, v in batch.items() if k in (schema.FEATURES, schema.IMAGE, schema.TEXTURE, schema.LANDMARKS)}

    def _write_panel(self, writers, step: int, batch) -> None:
        if batch is None:
            return
        out = self.net.model(batch[schema.FEATURES], training=False)
        shown = batch.get(schema.IMAGE, batch.get(schema.TEXTURE))
        panel = summaries.sample_panel(shown, out.get(TEXTURE), out[LANDMARKS], out[IMAGE])
        with writers["train"].as_default(step=step):
            summaries.image("samples/input_texture_landmarks_output", panel, max_outputs=PANEL_EXAMPLES)

    def _log_train(self, writers, step: int, means: dict[str, float], rate: float) -> None:
        lr = float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))
        with writers["train"].as_default(step=step):
            for k, v in means.items():
                summaries.scalar(f"loss/{k}", v)
            summaries.scalar("learning_rate", lr)
            summaries.scalar("examples_per_second", rate)
        self.history.update({f"train/{k}": v for k, v in means.items()})
        self.history["train/examples_per_second"] = rate
        parts = "  ".join(f"{k} {v:.5g}" for k, v in sorted(means.items()))
        logging.info("step %d/%d  %s  lr %.3g  %.1f examples/s", step, self.config.steps, parts, lr, rate)

    def _validate(self, writers, step: int, validation_dataset, identity_dataset, best_manager) -> None:
        metrics = {f"validation/{k}": v for k, v in self.evaluate(validation_dataset).items()}
        if self.embed_fn is not None and identity_dataset is not None:
            metrics.update({f"identity/{k}": v for k, v in self.evaluate_identity(identity_dataset).items()})
        if self.scorer is not None:
            metrics.update({f"{JUDGE_PREFIX}{k}": float(v) for k, v in self.scorer(self.net.model).items()})
        with writers["validation"].as_default(step=step):
            for k, v in metrics.items():
                summaries.scalar(k.replace("validation/", "loss/"), v)
        score = self._score(metrics)
        improved = score > float(self.best_score.numpy())
        if improved:
            self.best_score.assign(score)
            best_manager.save(checkpoint_number=step)
            if self.chief:
                record = {"step": step, "score": score, **metrics}
                io_utils.write_bytes_atomic(self.model_dir / BEST_FILE, json.dumps(record, indent=2).encode())
        self.history.update(metrics)
        best = json.loads((self.model_dir / BEST_FILE).read_text()) if (self.model_dir / BEST_FILE).is_file() else {}
        self.history.update({f"best/{k}": v for k, v in best.items() if isinstance(v, (int, float))})
        logging.info("validation at step %d: %s%s", step,
                     "  ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items())), "  (best so far)" if improved else "")
