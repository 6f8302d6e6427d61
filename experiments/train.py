"""Trains the face normalizer (paper Sec. 3) on the TFRecords of data_prep, and exports it.

    python experiments/train.py --records_dir=workspace/records128 --model_dir=workspace/runs/r128 \
        --output_size=128 --steps=20000 --batch_size=32 [--identity_weight=1.0] [--strategy=mirrored]

Restarting the same command resumes from the latest checkpoint in --model_dir (also after
SIGKILL). At the end the best checkpoint (by the validation identity metric) is exported to
--export_dir (default <model_dir>/export) with its model card. ``--synthetic`` trains on random
in-memory data with a fake encoder: a smoke test of the machinery (and of tf.distribute set-ups),
never a result.

Bad configuration (size not divisible by 16, unknown encoder, missing records, ...) fails before
any TensorFlow work, with a message naming the flag.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from normface import encoders  # noqa: E402
from normface.models.config import TEXTURE_DECODERS, UPSAMPLINGS, WARP_RESAMPLINGS, ModelConfig  # noqa: E402
from normface.training.config import (  # noqa: E402
    DETAIL_QUANTILE_REGIONS, ENCODER_DTYPES, LR_SCHEDULES, MIXED_PRECISION, STRATEGIES, TrainConfig)
from normface.training.losses import IDENTITY_KINDS  # noqa: E402
from normface.utils import config_flags  # noqa: E402

FLAGS = flags.FLAGS
# Data and folders.
flags.DEFINE_string("records_dir", None, "Folder of the TFRecords written by data_prep/build_records.py.")
flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs and config; resumed if it exists.")
flags.DEFINE_string("export_dir", None, "Export folder (default <model_dir>/export).")
flags.DEFINE_bool("export", True, "Export the best checkpoint at the end (chief only).")
flags.DEFINE_string("init_from", None, "Fine-tune: start a fresh run from another run folder's best weights, or from a packed "
                    "model folder of the same architecture (e.g. normface/serving/pretrained/normface128).")
flags.DEFINE_string("identity_faces", None,
                    "Faces folder of stage 1 (e.g. workspace/faces128): the best checkpoint is chosen by "
                    "cross-photo identity on its validation people's photos (output of photo A against photo "
                    "B of the same person); without it, by own identity on the validation records.")
flags.DEFINE_string("identity_judge", None,
                    "Choose the best checkpoint by an independent judge instead of the training encoder: a .tflite "
                    "path or 'default' ($NORMFACE_JUDGE, else ../shared/judges/mobilefacenet/MobileFaceNet.tflite). "
                    "Needs --identity_faces: the judge's person-balanced cross-photo TAR at 0.1% FAR on every "
                    "validation photo's output. It only scores (never a loss); the model card says which judge chose.")
flags.DEFINE_bool("synthetic", False, "Smoke test: random in-memory data and a fake encoder.")
flags.DEFINE_integer("synthetic_examples", 64, "Examples in the synthetic train set.")
flags.DEFINE_string("encoder", "dlib_face_resnet_v1", "Frozen identity encoder (normface.encoders registry name).")
flags.DEFINE_string("pairs_dir", None, "Invariance-pair records (data_prep/build_pairs.py) mixed into training.")
flags.DEFINE_float("pairs_ratio", 0.0, "Share of training examples drawn from --pairs_dir.", lower_bound=0.0, upper_bound=0.99)
flags.DEFINE_float("morph_keep", 1.0, "Share of the records' morphed examples kept (0: original faces only; "
                   "morphs are blurrier than originals, issue 28).", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_bool("mirror", False, "Mirror augmentation: flips paired with the flipped photo's features "
                  "(records built with --mirrored).")
# Model and training flags come from the config dataclasses (their defaults live there).
MODEL_HELP = {
    "output_size": "Output image side in pixels (a multiple of 16).",
    "feature_dim": "Encoder feature size (256 for dlib's face ResNet).",
    "feature_hidden": "Widths of the feature MLP.",
    "landmark_hidden": "Hidden widths of the landmark MLP.",
    "texture_decoder": "Texture decoder (paper Fig. 9).",
    "plain_cnn": "Ablation: predict the image directly, no texture/warp (Fig. 10).",
    "grid_channels": "Channels of the CNN's size/16 starting grid.",
    "channels": "Channels of the 4 upsampling stages.",
    "upsampling": "How the texture CNN doubles its grid: transpose (stride-2 transposed convolutions, the paper's; "
                  "a checkerboard) or resize (bilinear x2 + 3x3 convolution). --init_from a transpose model fits each "
                  "resize stage to the donor's stage by least squares on the training features.",
    "refine_channels": "Widths of a residual refiner at full size after the last stage (dilated 3x3 convolutions; "
                       "its RGB correction starts at zero, so --init_from an unrefined model starts at its output).",
    "num_landmarks": "Landmarks the decoder predicts (68: iBUG).",
    "warp_order": "Polyharmonic spline order of the warp layer (1: the paper's).",
    "warp_boundary_points": "Zero-flow points per image edge in the warp layer.",
    "warp_resampling": "How the warp samples the texture: bilinear (the paper's) or bicubic (Catmull-Rom, sharper).",
    "dtype_policy": "Keras dtype policy of the decoder.",
}
TRAIN_HELP = {
    "landmark_weight": "Weight of the landmark MSE (coordinates / size).",
    "texture_weight": "Weight of the texture L1.",
    "identity_weight": "Weight of the identity loss (0 = off: no warp/encoder in training).",
    "identity_loss": "Identity loss kind.",
    "identity_relation_weight": "Weight of the distances between the batch's output descriptors against its inputs' (0 = off).",
    "learning_rate": "Adam learning rate (peak).",
    "lr_schedule": "Learning-rate schedule.",
    "warmup_steps": "Linear warm-up steps (cosine schedule).",
    "decay_steps": "Exponential schedule: steps per decay.",
    "decay_rate": "Exponential schedule: factor per decay_steps.",
    "steps": "Training steps.",
    "batch_size": "Global batch size.",
    "log_every": "Steps between log lines / scalar summaries.",
    "image_every": "Steps between image summaries.",
    "eval_every": "Steps between validations.",
    "checkpoint_every": "Steps between checkpoints.",
    "eval_batches": "Validation batches (0 = all when known).",
    "identity_eval_examples": "Validation examples for the identity metric.",
    "max_checkpoints": "Latest checkpoints kept.",
    "checkpoint_input": "Also checkpoint the input iterator (exact resume).",
    "seed": "Random seed (initialization and data order).",
    "strategy": "tf.distribute strategy.",
    "mixed_precision": "Mixed precision policy (GPUs).",
    "deterministic": "tf.config.experimental.enable_op_determinism.",
    "perceptual_weight": "Weight of the perceptual loss (encoder activations of output vs target; 0 = off).",
    "perceptual_layers": "Encoder layers the perceptual loss compares.",
    "adversarial_weight": "Weight of the patch discriminator's generator loss (0 = off).",
    "discriminator_learning_rate": "Adam learning rate of the patch discriminator.",
    "discriminator_channels": "Channels of the patch discriminator's strided convolutions.",
    "encoder_dtype": "What the frozen encoder computes in for the losses (bfloat16: about 2x less CPU time).",
    "feature_matching_weight": "Weight of the discriminator feature matching (its activations on target vs decoded; 0 = off).",
    "background_weight": "Texture L1 weight outside the face and hair (1 = plain L1).",
    "calm_background_sigma": "Blur the texture target outside the face and hair by this Gaussian sigma in pixels (0 = off).",
    "lattice_weight": "Weight of the texture's spectral amplitude on a regular lattice in excess of the target's (0 = off).",
    "lattice_period": "Period in pixels of that lattice (its divisors' checkerboards fall on it too).",
    "lattice2_weight": "Weight of a second such lattice term, on --lattice2_period (0 = off).",
    "lattice2_period": "Period in pixels of the second lattice.",
    "geometry_lattice_weight": "Weight of the lattice term with texture and target placed on the predicted landmarks (0 = off).",
    "geometry_lattice_period": "Period in pixels of that lattice.",
    "landmark_spread_weight": "Weight of the batch's landmark spread (sd per point) against the targets' (0 = off).",
    "texture_spread_weight": "Weight of the batch's texture spread (sd per pixel) against the targets' (0 = off).",
    "texture_deviation_weight": "Weight of each texture's distance from the batch's mean output against its target's (0 = off).",
    "target_exaggeration": "Scale of each training target's deviation from the batch's mean target inside the face and hair (1 = off).",
    "target_exaggeration_sigma": "Exaggerate only the Gaussian low-pass (this sigma, pixels) of each target's deviation (0 = all of it).",
    "exaggerate_perceptual": "Exaggerate the perceptual term's photo as the targets are (needs --target_exaggeration != 1).",
    "detail_weight": "Weight of the texture's local fine-detail amplitude against the target's (0 = off).",
    "detail_quantile": "Detail loss: missing detail costs 2q per unit, excess 2(1-q) (0.5 = alike).",
    "detail_quantile_region": "Detail loss: where the quantile applies (face: inside the landmarks' hull, the median elsewhere).",
    "detail_bands": "Detail loss: its band-pass octaves, increasing Gaussian sigmas in pixels.",
    "spectrum_weight": "Weight of the texture's log power spectrum, ring by radial ring, against the target's (0 = off).",
}
config_flags.define_flags(ModelConfig, MODEL_HELP, choices={"texture_decoder": TEXTURE_DECODERS,
                                                            "upsampling": UPSAMPLINGS,
                                                            "warp_resampling": WARP_RESAMPLINGS})
config_flags.define_flags(TrainConfig, TRAIN_HELP, choices={
    "identity_loss": IDENTITY_KINDS, "lr_schedule": LR_SCHEDULES, "strategy": STRATEGIES, "mixed_precision": MIXED_PRECISION,
    "encoder_dtype": ENCODER_DTYPES, "detail_quantile_region": DETAIL_QUANTILE_REGIONS})
# The generated flags are this binary's own: --helpshort lists them and the model card records them.
flags.adopt_module_key_flags(config_flags)
# Distribution.
flags.DEFINE_string("tpu", "", "TPU name or address for --strategy=tpu (untested).")
flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into this many logical devices (to try --strategy=mirrored).")

flags.mark_flag_as_required("model_dir")


class ConfigError(ValueError):
    """A bad flag: reported at start-up, before any long work."""


# --- the records and the encoder ---
def load_records(records_dir: str, batch_size: int, seed: int, output_size: int | None = None,
                 pairs_dir: str | None = None, pairs_ratio: float = 0.0, mirror: bool = False,
                 morph_keep: float = 1.0):
    """``(train_ds, validation_ds, meta)`` from the records folder (read at ``output_size``, with
    invariance pairs mixed in, the mirror augmentation and the share of morphs kept as asked).

    meta: dict with ``mean_landmarks`` ``[68, 2]`` (x, y) at the output size, ``template``
    (AlignmentTemplate dict, the records'), ``size`` and anything worth recording in the model card.
    """
    import tensorflow as tf

    from normface.data import pipeline

    records = pipeline.read_meta(records_dir)
    try:
        size = pipeline.check_output_size(records_dir, records, output_size)
        train = pipeline.make_dataset(records_dir, "train", batch_size, shuffle=True, repeat=True, seed=seed,
                                      drop_remainder=True, output_size=size, mirror=mirror,
                                      pairs_dir=pairs_dir, pairs_ratio=pairs_ratio, morph_keep=morph_keep)
    except (ValueError, FileNotFoundError) as err:
        raise ConfigError(str(err)) from err
    val_count = records.splits["validation"]["count"]
    validation = pipeline.make_dataset(records_dir, "validation", batch_size, shuffle=False, output_size=size)
    # Known size: validation reads each face once.
    validation = validation.apply(tf.data.experimental.assert_cardinality(-(-val_count // batch_size)))
    data = {
        "faceset": records.raw.get("faceset", {}),
        "examples": {split: info["count"] for split, info in records.splits.items()},
        "encoder": records.raw.get("encoder", ""),
        "read_at_size": size,
        "mirror": mirror,
        "morph_keep": morph_keep,
    }
    if pairs_dir and pairs_ratio > 0:
        pair_meta = pipeline.read_meta(pairs_dir)
        data["pairs"] = {"dir": str(pairs_dir), "ratio": pairs_ratio, **pair_meta.raw.get("pairs", {})}
    meta = {
        "mean_landmarks": pipeline.scale_landmarks(records.mean_landmarks, records.size, size),
        "template": records.template.scaled(size),
        "size": size,
        "data": data,
    }
    return train, validation, meta


def cross_photo_dataset(faces_dir: str, encode_fn, size: int, batch_size: int, examples: int, seed: int):
    """``(dataset, info)``: the validation people's cross-photo pairs
    (:func:`normface.evaluation.recipe.cross_photo_examples`) for the identity metric, their
    photos encoded by ``encode_fn`` (the training encoder's record encoder)."""
    import tensorflow as tf

    from normface.data import faceset
    from normface.evaluation import recipe

    try:
        held = recipe.load_held_out(faceset.aligned_dir(faces_dir), encode_fn, "validation", "")
        pairs = recipe.cross_photo_examples(held, size, examples, seed)
    except (ValueError, FileNotFoundError) as err:
        raise ConfigError(f"--identity_faces={faces_dir}: {err}") from err
    info = {"faces": str(faces_dir), "pairs": len(pairs["features"]), "photos": len(held.photos.keys),
            "people": len(set(held.photos.people.tolist()))}
    return tf.data.Dataset.from_tensor_slices(pairs).batch(batch_size), info


def judge_scorer(judge_flag: str, faces_dir: str, encode_fn):
    """``(scorer, info)``: the Trainer's validation scorer by the judge ``judge_flag`` names
    (:class:`normface.evaluation.recipe.JudgeScorer` over every validation photo), and what the
    model card records about the choice."""
    from normface.data import faceset
    from normface.encoders import judge as judge_lib
    from normface.evaluation import recipe

    try:
        judge = judge_lib.judge_from_flag(judge_flag)
        held = recipe.load_held_out(faceset.aligned_dir(faces_dir), encode_fn, "validation", "")
    except (ValueError, FileNotFoundError) as err:
        raise ConfigError(f"--identity_judge={judge_flag}: {err}") from err
    info = {"judge": judge.identity, "rule": "person-balanced cross-photo TAR at 0.1% FAR (judge)",
            "photos": len(held.photos.keys), "people": len(set(held.photos.people.tolist()))}
    return recipe.JudgeScorer(judge, held), info


def check_encoder(name: str) -> None:
    """Raises ConfigError when ``name`` is not a registered encoder (cheap: builds nothing)."""
    try:
        encoders.check_name(name)
    except ValueError as err:
        raise ConfigError(f"--encoder={name}: {err}") from err


def build_encoder(name: str, perceptual_layers: tuple[str, ...] = (), dtype: str = "float32"):
    """``(resolved, embed_fn, loss_embed_fn, perceptual_fn)`` for the frozen encoder ``name``
    (:func:`normface.encoders.resolve`, loaded once): the metric's embedding in float32, the
    losses' in ``dtype``; perceptual_fn is None without layers."""
    resolved = encoders.resolve(name)
    perceptual = resolved.perceptual_fn(perceptual_layers, dtype) if perceptual_layers else None
    loss_embed = resolved.embed_fn(dtype) if dtype != "float32" else None
    return resolved, resolved.embed_fn(), loss_embed, perceptual


def configs_from_flags():
    """``(ModelConfig, TrainConfig)``; ConfigError naming the flag on bad values."""
    try:
        model_config = config_flags.from_flags(ModelConfig)
        train_config = config_flags.from_flags(TrainConfig)
    except ValueError as err:
        raise ConfigError(f"bad flag: {err}") from err
    return model_config, train_config


def check_start_up(model_config) -> None:
    """Every cheap check, before TensorFlow starts: records, encoder, multi-worker set-up."""
    if FLAGS.synthetic:
        if FLAGS.records_dir:
            raise ConfigError("--synthetic and --records_dir exclude each other")
    else:
        if not FLAGS.records_dir:
            raise ConfigError("--records_dir is required (or --synthetic for a smoke test)")
        records = Path(FLAGS.records_dir)
        if not records.is_dir() or not any(records.iterdir()):
            raise ConfigError(f"--records_dir={records}: missing or empty; build the records first (data_prep)")
        check_encoder(FLAGS.encoder)
        if FLAGS.pairs_ratio > 0 and not FLAGS.pairs_dir:
            raise ConfigError(f"--pairs_ratio={FLAGS.pairs_ratio} needs --pairs_dir")
        if FLAGS.pairs_dir and not Path(FLAGS.pairs_dir).is_dir():
            raise ConfigError(f"--pairs_dir={FLAGS.pairs_dir}: not a folder; build it with data_prep/build_pairs.py")
        if FLAGS.identity_faces and not Path(FLAGS.identity_faces).is_dir():
            raise ConfigError(f"--identity_faces={FLAGS.identity_faces}: not a folder; run data_prep/align_faces.py first")
    if FLAGS.identity_judge and not FLAGS.identity_faces:
        raise ConfigError(f"--identity_judge={FLAGS.identity_judge} needs --identity_faces (the validation people's photos)")
    if FLAGS.strategy == "multi_worker" and not os.environ.get("TF_CONFIG"):
        raise ConfigError("--strategy=multi_worker needs TF_CONFIG (cluster spec and this task)")
    if FLAGS.cpu_devices < 0:
        raise ConfigError(f"--cpu_devices must be >= 0, got {FLAGS.cpu_devices}")
    del model_config


def split_cpu(n: int) -> None:
    """Splits the CPU into ``n`` logical devices (must run before TensorFlow initializes)."""
    import tensorflow as tf

    if n > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)


def run() -> dict:
    from normface.training import export
    from normface.testing import synthetic
    from normface.training.strategy import is_chief, make_strategy
    from normface.training.trainer import Trainer

    model_config, train_config = configs_from_flags()
    check_start_up(model_config)
    split_cpu(FLAGS.cpu_devices)
    strategy = make_strategy(train_config.strategy, FLAGS.tpu)  # first TF work (multi-worker needs it so)
    import keras

    keras.utils.set_random_seed(FLAGS.seed)  # before the datasets: their shuffle order depends on it
    size = model_config.output_size
    with strategy.scope():
        if FLAGS.synthetic:
            embed_fn, chip_encoder, chip, encoder_id = synthetic.fake_embed_fn(FLAGS.seed), None, None, "fake"
            perceptual_fn, loss_embed_fn = embed_fn.activations, None
            mean = synthetic.mean_landmarks(size)
            train_ds = synthetic.synthetic_dataset(FLAGS.synthetic_examples, size, FLAGS.batch_size,
                                                   model_config.feature_dim, FLAGS.seed)
            val_ds = synthetic.synthetic_dataset(max(FLAGS.batch_size, 8), size, FLAGS.batch_size,
                                                 model_config.feature_dim, FLAGS.seed + 1, shuffle=False)
            meta = {"data": {"source": "synthetic", "examples": FLAGS.synthetic_examples}}
            identity_ds, scorer = None, None
        else:
            layers = train_config.perceptual_layers if train_config.perceptual_weight > 0 else ()
            resolved, embed_fn, loss_embed_fn, perceptual_fn = build_encoder(FLAGS.encoder, layers,
                                                                             train_config.encoder_dtype)
            chip_encoder, chip = resolved.encoder, resolved.chip
            if resolved.feature_dim != model_config.feature_dim:
                raise ConfigError(f"--feature_dim={model_config.feature_dim}, but encoder {FLAGS.encoder} gives "
                                  f"{resolved.feature_dim}")
            encoder_id = FLAGS.encoder
            train_ds, val_ds, meta = load_records(FLAGS.records_dir, FLAGS.batch_size, FLAGS.seed, size,
                                                  FLAGS.pairs_dir, FLAGS.pairs_ratio, FLAGS.mirror,
                                                  FLAGS.morph_keep)
            mean = meta["mean_landmarks"]
            identity_ds, scorer = None, None
            if FLAGS.identity_judge:
                scorer, meta["data"]["checkpoint_chosen_by"] = judge_scorer(
                    FLAGS.identity_judge, FLAGS.identity_faces, resolved.record_encoder())
            if FLAGS.identity_faces:
                identity_ds, meta["data"]["identity_eval"] = cross_photo_dataset(
                    FLAGS.identity_faces, resolved.record_encoder(), size, FLAGS.batch_size, train_config.identity_eval_examples, FLAGS.seed)
    import numpy as np

    template = meta.get("template")
    metadata = {
        "mean_landmarks": np.asarray(mean, np.float32).tolist(),
        "template": template.to_dict() if hasattr(template, "to_dict") else template,
        "encoder_id": encoder_id,
        "chip": chip,
        "data": {"records_dir": FLAGS.records_dir or "", **meta.get("data", {})},
        "flags": {f.name: f.value for f in FLAGS.get_key_flags_for_module(sys.argv[0])},
    }
    trainer = Trainer(model_config, train_config, mean, FLAGS.model_dir, embed_fn=embed_fn, strategy=strategy,
                      metadata=metadata, perceptual_fn=perceptual_fn, loss_embed_fn=loss_embed_fn, scorer=scorer)
    history = trainer.fit(train_ds, val_ds, identity_dataset=identity_ds, init_from=FLAGS.init_from)
    if FLAGS.export and is_chief(strategy):
        out = export.export_from_model_dir(FLAGS.model_dir, FLAGS.export_dir or Path(FLAGS.model_dir) / "export",
                                           chip_encoder=chip_encoder, chip=chip)
        logging.info("exported %s", out)
    return history


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        run()
    except ConfigError as err:
        print(f"train.py: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
