"""Synthetic records and a fake encoder, for tests, smoke runs and benchmarks -- never for results.

The datasets have the records' element structure (see :class:`normface.training.trainer.Trainer`);
features are a fixed random projection of each example's landmarks and texture, so a decoder can
learn them. The fake encoder is a tiny frozen random conv net with the real one's call signature.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from normface.data import faceset
from normface.faces.alignment import AlignmentTemplate

NUM_LANDMARKS = 68
DESCRIPTOR_DIM = 128
GOLDEN_ANGLE = np.pi * (3.0 - np.sqrt(5.0))


def mean_landmarks(size: int, num: int = NUM_LANDMARKS) -> np.ndarray:
    """``[num, 2]`` distinct (x, y) points on a sunflower spiral in the central 70% of the image."""
    i = np.arange(num) + 0.5
    radius = 0.35 * (size - 1) * np.sqrt(i / num)
    theta = i * GOLDEN_ANGLE
    centre = (size - 1) / 2.0
    return np.stack([centre + radius * np.cos(theta), centre + radius * np.sin(theta)], -1).astype(np.float32)


def synthetic_examples(n: int, size: int, feature_dim: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` unbatched examples as numpy arrays (keys: image, texture, landmarks, features,
    descriptor, person)."""
    rng = np.random.default_rng(seed)
    mean = mean_landmarks(size)
    landmarks = mean[None] + rng.normal(0.0, 0.01 * size, (n, NUM_LANDMARKS, 2)).astype(np.float32)
    # Smooth textures: a random 4x4 colour field upsampled, so CNNs can fit them.
    coarse = rng.uniform(0.2, 0.8, (n, 4, 4, 3)).astype(np.float32)
    texture = tf.image.resize(coarse, (size, size), method="bilinear").numpy()
    code = np.concatenate([landmarks.reshape(n, -1) / size, coarse.reshape(n, -1)], axis=1)
    projection = np.random.default_rng(seed + 1).normal(0, 1 / np.sqrt(code.shape[1]), (code.shape[1], feature_dim))
    features = np.maximum(code @ projection, 0).astype(np.float32)
    descriptor = rng.normal(0, 0.1, (n, DESCRIPTOR_DIM)).astype(np.float32)
    person = np.array([f"synthetic/{i:05d}".encode() for i in range(n)])
    return {"image": texture.copy(), "texture": texture, "landmarks": landmarks, "features": features,
            "descriptor": descriptor, "person": person}


def synthetic_dataset(n: int, size: int, batch_size: int, feature_dim: int = 256, seed: int = 0,
                      shuffle: bool = True) -> tf.data.Dataset:
    """Batched dataset of :func:`synthetic_examples` (repeated, drop_remainder, shuffled by ``seed``)."""
    ds = tf.data.Dataset.from_tensor_slices(synthetic_examples(n, size, feature_dim, seed))
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.repeat().batch(batch_size, drop_remainder=True)
    options = tf.data.Options()
    # In-memory data has no files to shard across workers.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return ds.with_options(options)


def fake_embed_fn(seed: int = 0, descriptor_dim: int = DESCRIPTOR_DIM, chip_size: int = 32):
    """A frozen random conv net standing in for the encoder: ``(images [b, S, S, 3] in [0, 1],
    landmarks [b, n, 2]) -> [b, descriptor_dim]``, differentiable in the images.

    The images are resized to ``chip_size`` (the landmarks are ignored: no face chip). Its
    ``activations`` attribute is the matching perceptual function: ``(images, landmarks) ->
    (descriptors, [both conv layers' activations])``.
    """
    init = keras.initializers.GlorotNormal(seed=seed)
    inputs = keras.Input((chip_size, chip_size, 3))
    a1 = keras.layers.Conv2D(8, 3, strides=2, activation="relu", kernel_initializer=init)(inputs)
    a2 = keras.layers.Conv2D(16, 3, strides=2, activation="relu", kernel_initializer=init)(a1)
    out = keras.layers.Dense(descriptor_dim, kernel_initializer=init)(keras.layers.GlobalAveragePooling2D()(a2))
    net = keras.Model(inputs, [out, a1, a2], name="fake_encoder")
    net.trainable = False

    def activations(images, landmarks):
        del landmarks
        chips = tf.image.resize(tf.cast(images, tf.float32), (chip_size, chip_size))
        descriptor, *acts = net(chips, training=False)
        return descriptor, acts

    def embed(images, landmarks):
        return activations(images, landmarks)[0]

    embed.model = net  # so exports and checkpoints can track its variables
    embed.activations = activations
    return embed


def tiny_model_config(output_size: int = 32, feature_dim: int = 16, **overrides):
    """A model small enough for unit tests on 2 CPU cores (a few thousand parameters)."""
    from normface.models import ModelConfig

    base = dict(output_size=output_size, feature_dim=feature_dim, feature_hidden=(32,), landmark_hidden=(16,),
                grid_channels=8, channels=(8, 8, 8, 8))
    return ModelConfig(**{**base, **overrides})


def tiny_export(out_dir, size: int = 32, encoder_id: str = "dlib", seed: int = 0, **overrides):
    """Exports an untrained tiny normalizer (real 256-D encoder features in, ``size`` px out; other
    ``ModelConfig`` fields as ``overrides``) whose mean landmarks sit on the template's eyes:
    plumbing tests of inference and evaluation. A refiner's correction, zero when built, gets
    random weights, so the refiner shows in the output."""
    import keras

    from normface.faces.alignment import AlignmentTemplate, eye_centers
    from normface.models import build_normalizer
    from normface.training import export

    keras.utils.set_random_seed(seed)
    config = tiny_model_config(output_size=size, feature_dim=256, **overrides)
    template = AlignmentTemplate.for_size(size)
    mean = mean_landmarks(size)
    mean = mean + (template.eye_centers().mean(0) - eye_centers(mean).mean(0))
    net = build_normalizer(config, mean.astype(np.float32))
    if config.refine_channels:
        layer = net.model.get_layer("texture_cnn").get_layer("refine_rgb")
        rng = np.random.default_rng(seed)
        layer.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in layer.get_weights()])
    return export.export_normalizer(net.model, config, out_dir, template=template, encoder_id=encoder_id)


# ----------------------------------------------------------------------------------------------
# Synthetic input for tests and benchmarks.
# ----------------------------------------------------------------------------------------------
def fake_record_encoder(images: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic stand-in for the records builder's encoder (``build.EncodeFn``): colour and
    landmark statistics as 8-D features, tiled to 128-D descriptors. A flip changes them."""
    images = images.astype(np.float32) / 255.0
    feats = np.concatenate([images.mean((1, 2)), images.std((1, 2)), landmarks.mean(1)], -1)
    return feats.astype(np.float32), np.tile(feats, (1, 16)).astype(np.float32)


def write_synthetic_faceset(root, size: int, counts: dict[str, int], seed: int = 0) -> AlignmentTemplate:
    """Writes a face set of :func:`synthetic_faces` (``counts``: split -> faces) under
    ``root`` in the format of :mod:`normface.data.faceset`; returns its template."""
    template = AlignmentTemplate.for_size(size)
    faceset.write_template(root, template)
    images, marks = synthetic_faces(sum(counts.values()), template, seed)
    i = 0
    for split, n in counts.items():
        for j in range(n):
            entry = faceset.FaceEntry(person=f"synthetic/{split}_{j:04d}", split=split,
                                      landmarks=marks[i].tolist(), photos=[])
            faceset.write_face(root, entry, images[i])
            i += 1
    return template


# --- synthetic faces (aligned images + landmarks) for data-preparation tests and benchmarks ---


def canonical_landmarks(template: AlignmentTemplate) -> np.ndarray:
    """A generic, left/right-symmetric 68-point face ``[68, 2]`` placed by ``template``'s eyes.

    Only a plausible layout (ellipses and arcs in iBUG order), not a statistical mean face.
    """
    (lx, ey), (rx, _) = template.eye_centers()
    d, cx = rx - lx, 0.5 * (lx + rx)

    def ellipse(x0, y0, a, b, degrees):
        t = np.radians(np.asarray(degrees, dtype=np.float64))
        return np.stack([x0 + a * np.cos(t), y0 + b * np.sin(t)], axis=-1)

    jaw = ellipse(cx, ey + 0.1 * d, 0.95 * d, 1.45 * d, 180.0 - np.linspace(0, 180, 17))
    brow_x = np.linspace(0.9, 0.15, 5) * d
    brow_y = ey - 0.4 * d - 0.1 * d * np.sin(np.linspace(0.3, 2.8, 5))
    brows = np.concatenate([np.stack([cx - brow_x, brow_y], -1), np.stack([cx + brow_x[::-1], brow_y[::-1]], -1)])
    bridge = np.stack([np.full(4, cx), ey + np.linspace(0.05, 0.55, 4) * d], -1)
    nostrils = np.stack([cx + np.linspace(-0.2, 0.2, 5) * d, ey + d * np.array([0.62, 0.66, 0.68, 0.66, 0.62])], -1)
    eye_angles = (180, 240, 300, 0, 60, 120)
    eyes = np.concatenate([ellipse(lx, ey, 0.22 * d, 0.09 * d, eye_angles), ellipse(rx, ey, 0.22 * d, 0.09 * d, eye_angles)])
    outer = ellipse(cx, ey + 1.0 * d, 0.4 * d, 0.18 * d, (180, 210, 240, 270, 300, 330, 0, 30, 60, 90, 120, 150))
    inner = ellipse(cx, ey + 1.0 * d, 0.3 * d, 0.06 * d, (180, 240, 270, 300, 0, 60, 90, 120))
    points = np.concatenate([jaw, brows, bridge, nostrils, eyes, outer, inner])
    assert points.shape == (NUM_LANDMARKS, 2)
    return points


def synthetic_faces(
    count: int, template: AlignmentTemplate, seed: int = 0, jitter: float = 0.03
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` synthetic aligned faces: (uint8 images ``[n, S, S, 3]``, landmarks ``[n, 68, 2]``).

    Each face is the canonical layout moved by a smooth random deformation (``jitter`` x size),
    drawn over a smooth random background: skin-coloured jaw hull, dark eyes, brows and lips, so
    warps, morphs and composites have structure to move.
    """
    import cv2

    rng = np.random.default_rng(seed)
    size = template.size
    base = canonical_landmarks(template)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images, marks = [], []
    for _ in range(count):
        # Smooth deformation: random affine plus a low-frequency bump, both ~jitter * size.
        affine = np.eye(2) + rng.normal(0.0, jitter, (2, 2))
        centre = base.mean(0)
        pts = (base - centre) @ affine.T + centre + rng.normal(0.0, jitter * size, 2)
        pts += jitter * size * 0.5 * np.sin(2 * np.pi * (base / size) @ rng.normal(0, 1, (2, 2)))
        colour = rng.uniform(0.2, 0.8, 3)
        background = np.stack(
            [np.clip(c + 0.2 * np.sin(2 * np.pi * (rng.uniform(0.5, 2) * xx + rng.uniform(0.5, 2) * yy)), 0, 1) for c in colour],
            -1,
        )
        img = (background * 255).astype(np.uint8)
        skin = tuple(int(v) for v in rng.uniform(120, 230, 3))
        cv2.fillConvexPoly(img, cv2.convexHull(np.round(pts).astype(np.int32)), skin, lineType=cv2.LINE_AA)
        dark = tuple(int(v) for v in rng.uniform(20, 90, 3))
        for part in (slice(17, 22), slice(22, 27), slice(27, 31), slice(31, 36)):
            cv2.polylines(img, [np.round(pts[part]).astype(np.int32)], False, dark, 1, cv2.LINE_AA)
        for part in (slice(36, 42), slice(42, 48), slice(48, 60)):
            cv2.fillPoly(img, [np.round(pts[part]).astype(np.int32)], dark, cv2.LINE_AA)
        images.append(img)
        marks.append(pts)
    return np.stack(images), np.stack(marks).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Photo metadata for tests of input handling (EXIF orientation, colour profiles).
# ----------------------------------------------------------------------------------------------
# ProPhoto (ROMM) RGB's colorants in the ICC's D50 white: a gamut much wider than sRGB's.
WIDE_GAMUT_COLORANTS = {b"rXYZ": (0.7977, 0.2880, 0.0000), b"gXYZ": (0.1352, 0.7119, 0.0000),
                        b"bXYZ": (0.0313, 0.0001, 0.8249)}


def wide_gamut_profile() -> bytes:
    """An ICC profile with ProPhoto RGB's primaries and sRGB's tone curves: Little CMS's sRGB
    profile (from Pillow) with its three colorant tags replaced, so no profile file is needed."""
    import struct

    from PIL import ImageCms

    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[84:100] = bytes(16)  # the profile ID (an MD5 of the content) becomes "not computed"
    (count,) = struct.unpack(">I", data[128:132])
    for i in range(count):
        sig, offset, _ = struct.unpack(">4sII", data[132 + 12 * i:144 + 12 * i])
        if sig in WIDE_GAMUT_COLORANTS:
            data[offset + 8:offset + 20] = struct.pack(">3i", *(round(v * 65536) for v in WIDE_GAMUT_COLORANTS[sig]))
    return bytes(data)


def to_profile(rgb: np.ndarray, profile: bytes) -> np.ndarray:
    """sRGB ``[h, w, 3]`` uint8 pixels re-encoded in the colour space of ICC ``profile``."""
    import io

    from PIL import Image, ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    target = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    return np.asarray(ImageCms.profileToProfile(Image.fromarray(rgb), srgb, target, outputMode="RGB"))


# EXIF Orientation -> the transpose that turns the upright photo into what a camera stores with
# that tag (ImageOps.exif_transpose undoes it).
STORED_FOR_ORIENTATION = {3: "ROTATE_180", 6: "ROTATE_90", 8: "ROTATE_270"}


def save_with_orientation(upright, path, orientation: int, **save_options) -> None:
    """Saves PIL image ``upright`` as a camera would with EXIF ``orientation`` (3, 6 or 8): the
    pixels turned, the tag telling viewers how to turn them back."""
    from PIL import ExifTags, Image

    stored = upright.transpose(getattr(Image.Transpose, STORED_FOR_ORIENTATION[orientation]))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "normface-test"
    stored.save(path, exif=exif.tobytes(), **save_options)
