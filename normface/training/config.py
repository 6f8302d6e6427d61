"""Training configuration: loss weights, optimizer schedule, loop intervals, distribution.

One dataclass the binary fills from flags and the model card and checkpoint folder record
(``to_dict`` / ``from_dict`` round-trip through JSON).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from normface.utils import dataclass_io
from normface.training.losses import IDENTITY_KINDS

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
LR_SCHEDULES = ("constant", "cosine", "exponential")
# Where --detail_quantile applies: the whole frame, or the face (the mean landmarks' hull; the
# plain median, 0.5, elsewhere).
DETAIL_QUANTILE_REGIONS = ("frame", "face")
MIXED_PRECISION = ("", "mixed_float16", "mixed_bfloat16")
ENCODER_DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass
class TrainConfig:
    """How to train.

    Loss weights: the paper's values are not legible in our copy. The landmark loss is in units of
    the image size (LandmarkMSE), so 1% of the size off costs 1e-4 before weighting; a weight of
    100 makes that as costly as a 0.01 texture L1. The identity weight is 0 (off) by default: it
    needs the warp and the encoder in every step (slow on CPU); 1.0 is a reasonable value with the
    squared-Euclidean kind (dlib descriptor distances of the same person are ~0.3-0.6).

    learning_rate, lr_schedule (constant | cosine to 0 over ``steps`` | exponential, x
    ``decay_rate`` every ``decay_steps``), warmup_steps (linear warm-up, cosine only): Adam.
    batch_size: global batch (split over replicas).
    log_every / image_every / eval_every / checkpoint_every: intervals in steps (0 = never).
    eval_batches: validation batches per evaluation (0 = the whole validation set when its size is
      known, else 8).
    identity_eval_examples: validation examples the identity metric runs the model + encoder on.
    checkpoint_input: also checkpoint the input iterator, so a resumed run sees exactly the batches
      an uninterrupted one would (costs the shuffle buffer's size on disk).
    strategy: default | mirrored | multi_worker (TF_CONFIG) | tpu.
    mixed_precision: "" (float32), mixed_float16 (GPUs, with loss scaling) or mixed_bfloat16.
    deterministic: tf.config.experimental.enable_op_determinism (bit-exact resume, slower).

    Beyond the paper (issue 17's ablation chooses among them; all off by default):
    perceptual_weight, perceptual_layers: feature matching between the frozen encoder's
      activations at these layers on the generated image and on the target image (mean absolute
      difference per layer). Like the identity loss it needs the warp and the encoder in every
      step; with both on, one encoder pass serves both. The default layers end the dlib ResNet's
      first three stages (35x35x32, 17x17x64, 8x8x128): texture and parts, not yet identity.
    adversarial_weight, discriminator_learning_rate, discriminator_channels: a patch
      discriminator on the decoded texture (non-saturating GAN loss, its own Adam optimizer).
    feature_matching_weight: with the discriminator, the mean absolute difference of its
      intermediate activations on the target and on the decoded texture (feature matching, Salimans
      et al. 2016): a steadier signal than the logit alone.
    background_weight: the texture L1's weight outside the face and hair
      (:func:`normface.faces.masks.face_and_hair_mask` on the mean landmarks, soft edge), inside
      it 1; 1.0 is the plain L1. Lower lets the decoder spend less on background it cannot predict.
    calm_background_sigma: when > 0, the texture target outside the face and hair is replaced by
      a Gaussian blur of itself (sigma in pixels at the output size), so the decoder is not asked
      to memorise the clutter behind each person (the paper's "noise from overfitting to
      backgrounds"); validation still scores the untouched targets.
    lattice_weight, lattice_period: when the weight is > 0, :func:`normface.training.losses.lattice_excess`
      on the decoded texture against the training target: its spectral amplitude on a
      period-``lattice_period`` lattice (the transposed convolutions' checkerboard of every stage,
      and the 8x8 grid's cells at 128) in excess of the target's, so the grid is penalised where
      it lives without asking the decoder for less detail anywhere else.
    lattice2_weight, lattice2_period: a second such term on another period, with its own weight
      (session 13: the stride lattice, period 4, at 500 holds the last stages' checkerboard back,
      and period 8, whose bins add the band-edge (+-16, 0) at 128, at a lighter 100).
    geometry_lattice_weight, geometry_lattice_period: when the weight is > 0, the same
      :func:`normface.training.losses.lattice_excess`, but with the decoded texture and its target
      both placed on the step's predicted landmarks (the warp the output image goes through, its
      gradient kept from the landmarks): at the geometry the picture is shown in. Why (session 14):
      the lattice's band-edge bin (vertical frequency 1/8 cycle per pixel) is where the face's
      horizontal bands add or cancel by their spacing; in the texture frame (the mean landmarks)
      they cancel and a texture-frame lattice term cannot see them, on the outputs' landmarks they
      add, and the target's own texture there is what a real face would hold.
    identity_relation_weight: when > 0, :func:`normface.training.losses.descriptor_relation_mismatch`:
      the distances between the batch's output descriptors asked to equal those between its input
      descriptors (outputs of different people as far apart as their photos; the per-example
      identity loss alone lets them drift towards the crowd's mean).
    landmark_spread_weight: when > 0, :func:`normface.training.losses.landmark_spread_mismatch`:
      the batch's predicted landmarks asked to spread (standard deviation over the batch, point by
      point) as much as its targets do; the MSE alone draws every face near one geometry.
    texture_spread_weight: when > 0, :func:`normface.training.losses.texture_spread_mismatch`: the
      batch's decoded textures asked to vary, pixel by pixel (standard deviation over the batch),
      as much as their targets do, inside the face and hair (the background's spread is clutter);
      the pixel losses alone draw every face near the mean face.
    texture_deviation_weight: when > 0, :func:`normface.training.losses.texture_deviation_mismatch`:
      each decoded texture's deviation from the batch's mean output asked to be as large (root mean
      square inside the face and hair) as its target's from the mean target: each face as far from
      the mean face as the person is, in whatever direction the other losses choose.
    target_exaggeration: each training target's deviation from the batch's mean target, inside the
      face and hair, scaled by this (1: the targets as they are). Why (session 15): the pixel
      losses learn the conditional mean, the mean face plus a deviation shrunk by what the features
      leave uncertain, and the judge finds such outputs alike; the conditional mean of exaggerated
      targets is the mean face plus the predicted deviation scaled, the shrinkage undone in the
      decoder (validation scores the real targets).
    target_exaggeration_sigma: when > 0, only the Gaussian low-pass (this sigma in pixels) of each
      target's deviation is scaled. Why (session 16): exaggerated whole, the targets' fine detail
      grows too, and at 2x the outputs were sharper than photos and more alike to the judge (a
      drawn style all of them share); the person's tone, shape and shading lie in the coarse part.
    exaggerate_perceptual: the perceptual term's photo exaggerated too (needs target_exaggeration
      != 1 and perceptual_weight > 0): the photo plus the target's exaggeration placed on the
      photo's landmarks. Why (session 16): exaggerated targets alone reach the pixel terms only,
      while the perceptual term, the recipe's strongest, still asks for the real photo's
      activations and so for the shrunk conditional mean in the encoder's space.
    detail_weight: when > 0, :func:`normface.training.losses.detail_mismatch` on the decoded texture
      against the training target: the local amplitude of its fine detail (two band-pass octaves,
      in windows of sigma 4 px) against the target's, a loss that asks how much detail there is
      where without asking for the exact position of each hair and pore (which the pixel losses
      average into a blur).
    detail_quantile: that loss's weighing of missing against excess detail (0.5: alike; above
      0.5 it asks for an upper quantile of the amount where the features leave it uncertain,
      :func:`normface.training.losses.detail_mismatch`).
    detail_quantile_region: where that quantile applies: "frame" (everywhere) or "face" (inside
      the hull of the texture frame's mean landmarks, edge softened by 2 px; the median, 0.5,
      outside: above the brows, where the hairline's height is uncertain, the upper quantile draws
      a fixed bright edge).
    detail_bands: that loss's band-pass octaves, increasing Gaussian sigmas in pixels at the output
      size ((1, 2): the finest octave and the next; (1,): the finest alone).
    spectrum_weight: when > 0, :func:`normface.training.losses.spectrum_mismatch` on the decoded
      texture against the training target: the log power of its spectrum, ring by radial ring
      from 1/16 cycles per pixel to Nyquist, against the target's (how much energy each fine
      frequency holds, whatever its phase and direction: the decoders' spectra fall off faster
      than photographs').
    encoder_dtype: what the frozen encoder computes in for the identity and perceptual losses
      (bfloat16 halves its CPU time where the CPU has bfloat16 units; descriptors move by ~0.01);
      the validation identity metric always runs it in float32.
    """

    landmark_weight: float = 100.0
    texture_weight: float = 1.0
    identity_weight: float = 0.0
    identity_loss: str = "squared_euclidean"
    identity_relation_weight: float = 0.0
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    warmup_steps: int = 0
    decay_steps: int = 10000
    decay_rate: float = 0.5
    steps: int = 100000
    batch_size: int = 32
    log_every: int = 100
    image_every: int = 1000
    eval_every: int = 1000
    checkpoint_every: int = 1000
    eval_batches: int = 0
    identity_eval_examples: int = 256
    max_checkpoints: int = 3
    checkpoint_input: bool = True
    seed: int = 0
    strategy: str = "default"
    mixed_precision: str = ""
    deterministic: bool = False
    perceptual_weight: float = 0.0
    perceptual_layers: tuple[str, ...] = ("relu7", "relu15", "relu21")
    adversarial_weight: float = 0.0
    discriminator_learning_rate: float = 2e-4
    discriminator_channels: tuple[int, ...] = (32, 64, 128)
    feature_matching_weight: float = 0.0
    background_weight: float = 1.0
    calm_background_sigma: float = 0.0
    lattice_weight: float = 0.0
    lattice_period: int = 16
    lattice2_weight: float = 0.0
    lattice2_period: int = 8
    geometry_lattice_weight: float = 0.0
    geometry_lattice_period: int = 8
    landmark_spread_weight: float = 0.0
    texture_spread_weight: float = 0.0
    texture_deviation_weight: float = 0.0
    target_exaggeration: float = 1.0
    target_exaggeration_sigma: float = 0.0
    exaggerate_perceptual: bool = False
    detail_weight: float = 0.0
    detail_quantile: float = 0.5
    detail_quantile_region: str = "frame"
    detail_bands: tuple[float, ...] = (1.0, 2.0)
    spectrum_weight: float = 0.0
    encoder_dtype: str = "float32"

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raises ValueError naming the bad field."""
        for name in ("landmark_weight", "texture_weight", "identity_weight", "identity_relation_weight", "perceptual_weight", "adversarial_weight",
                     "feature_matching_weight", "background_weight", "calm_background_sigma",
                     "lattice_weight", "lattice2_weight", "geometry_lattice_weight", "landmark_spread_weight", "texture_spread_weight", "texture_deviation_weight", "target_exaggeration_sigma", "detail_weight", "spectrum_weight", "warmup_steps", "eval_batches",
                     "identity_eval_examples", "log_every", "image_every", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.identity_loss not in IDENTITY_KINDS:
            raise ValueError(f"identity_loss must be one of {IDENTITY_KINDS}, got {self.identity_loss!r}")
        if not self.detail_bands or list(self.detail_bands) != sorted(set(self.detail_bands)) or min(
                self.detail_bands) <= 0:
            raise ValueError(f"detail_bands must be increasing positive sigmas, got {self.detail_bands}")
        if not 0 < self.detail_quantile < 1:
            raise ValueError(f"detail_quantile must be in (0, 1), got {self.detail_quantile}")
        if self.detail_quantile_region not in DETAIL_QUANTILE_REGIONS:
            raise ValueError(f"detail_quantile_region must be one of {DETAIL_QUANTILE_REGIONS}, "
                             f"got {self.detail_quantile_region!r}")
        if self.target_exaggeration <= 0:
            raise ValueError(f"target_exaggeration must be > 0, got {self.target_exaggeration}")
        if self.exaggerate_perceptual and (self.target_exaggeration == 1.0 or self.perceptual_weight == 0):
            raise ValueError("exaggerate_perceptual needs target_exaggeration != 1 and perceptual_weight > 0, "
                             f"got {self.target_exaggeration} and {self.perceptual_weight}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.decay_steps < 1 or not 0 < self.decay_rate <= 1:
            raise ValueError(f"need decay_steps >= 1 and 0 < decay_rate <= 1, got {self.decay_steps}, {self.decay_rate}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_checkpoints < 1:
            raise ValueError(f"max_checkpoints must be >= 1, got {self.max_checkpoints}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.perceptual_weight > 0 and not self.perceptual_layers:
            raise ValueError("perceptual_weight > 0 needs perceptual_layers")
        for name in ("lattice_period", "lattice2_period", "geometry_lattice_period"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be >= 2, got {getattr(self, name)}")
        if self.discriminator_learning_rate <= 0:
            raise ValueError(f"discriminator_learning_rate must be > 0, got {self.discriminator_learning_rate}")
        if not self.discriminator_channels or min(self.discriminator_channels) < 1:
            raise ValueError(f"discriminator_channels must be positive, got {self.discriminator_channels}")
        if self.encoder_dtype not in ENCODER_DTYPES:
            raise ValueError(f"encoder_dtype must be one of {ENCODER_DTYPES}, got {self.encoder_dtype!r}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}")

    @property
    def uses_identity(self) -> bool:
        """Whether training steps compare descriptors (the identity loss or their relation)."""
        return self.identity_weight > 0 or self.identity_relation_weight > 0

    @property
    def uses_warp(self) -> bool:
        """Whether training steps run the warp and the encoder (identity or perceptual loss)."""
        return self.uses_identity or self.perceptual_weight > 0

    @property
    def uses_discriminator(self) -> bool:
        return self.adversarial_weight > 0 or self.feature_matching_weight > 0

    def to_dict(self) -> dict[str, Any]:
        return dataclass_io.to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return dataclass_io.from_dict(cls, data)
