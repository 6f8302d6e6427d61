"""TensorBoard summaries without the ``tensorboard`` package, and the sample-image panel.

``tf.summary.scalar`` / ``image`` live in the tensorboard package, which this project does not
install; :func:`scalar` and :func:`image` write the same records (the scalars and images plugins'
formats) through core ``tf.summary.write``, so TensorBoard elsewhere reads them as usual.
The panel (input | predicted texture | predicted landmarks drawn | output) is pure TensorFlow.
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow.core.framework import summary_pb2


def _metadata(plugin: str, data_class: int) -> summary_pb2.SummaryMetadata:
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin), data_class=data_class
    )


def scalar(name: str, value, step=None) -> None:
    """Writes a float32 scalar as the TensorBoard scalars plugin does."""
    with tf.name_scope("scalar_summary"):
        tensor = tf.cast(tf.convert_to_tensor(value), tf.float32)
        tf.summary.write(name, tensor, step=step, metadata=_metadata("scalars", summary_pb2.DATA_CLASS_SCALAR))


def image(name: str, images, step=None, max_outputs: int = 3) -> None:
    """Writes ``[b, h, w, 3]`` images (float in [0, 1] or uint8) as the TensorBoard images plugin
    does: a string tensor ``[width, height, png_0, png_1, ...]``."""
    with tf.name_scope("image_summary"):
        images = tf.convert_to_tensor(images)
        if images.dtype != tf.uint8:
            images = tf.image.convert_image_dtype(tf.clip_by_value(images, 0.0, 1.0), tf.uint8, saturate=True)
        images = images[:max_outputs]
        pngs = tf.map_fn(tf.image.encode_png, images, fn_output_signature=tf.string)
        shape = tf.shape(images)
        dims = tf.strings.as_string(tf.stack([shape[2], shape[1]]))
        tensor = tf.concat([dims, pngs], axis=0)
        tf.summary.write(name, tensor, step=step, metadata=_metadata("images", summary_pb2.DATA_CLASS_BLOB_SEQUENCE))

PREDICTED_COLOR = (1.0, 0.1, 0.1)


def draw_landmarks(images: tf.Tensor, landmarks: tf.Tensor, color=PREDICTED_COLOR, radius: float = 1.0) -> tf.Tensor:
    """Paints a disc of ``radius`` pixels at every landmark.

    Args:
      images: ``[b, h, w, 3]`` float in [0, 1].
      landmarks: ``[b, n, 2]`` (x, y) pixels.
      color: RGB in [0, 1].
      radius: disc radius in pixels.

    Returns:
      ``[b, h, w, 3]`` float32 images.
    """
    with tf.name_scope("draw_landmarks"):
        images = tf.cast(images, tf.float32)
        landmarks = tf.cast(landmarks, tf.float32)
        h, w = tf.shape(images)[1], tf.shape(images)[2]
        ys, xs = tf.meshgrid(tf.range(h, dtype=tf.float32), tf.range(w, dtype=tf.float32), indexing="ij")
        grid = tf.reshape(tf.stack([xs, ys], axis=-1), [1, -1, 1, 2])  # [1, h*w, 1, (x, y)]
        d2 = tf.reduce_sum(tf.square(grid - landmarks[:, None]), axis=-1)  # [b, h*w, n]
        near = tf.reduce_min(d2, axis=-1) <= radius * radius + 0.25
        mask = tf.reshape(near, [-1, h, w, 1])
        paint = tf.broadcast_to(tf.constant(color, tf.float32), tf.shape(images))
        return tf.where(mask, paint, images)


def sample_panel(input_image: tf.Tensor, texture: tf.Tensor | None, landmarks: tf.Tensor, output: tf.Tensor) -> tf.Tensor:
    """``[b, S, 4S, 3]`` rows of input | predicted texture | predicted landmarks on the input | output.

    ``texture`` None (the plain-CNN ablation) leaves its column grey. All inputs in [0, 1] (clipped).
    """
    with tf.name_scope("sample_panel"):
        input_image = tf.clip_by_value(tf.cast(input_image, tf.float32), 0.0, 1.0)
        output = tf.clip_by_value(tf.cast(output, tf.float32), 0.0, 1.0)
        if texture is None:
            texture = tf.fill(tf.shape(output), 0.5)
        texture = tf.clip_by_value(tf.cast(texture, tf.float32), 0.0, 1.0)
        marked = draw_landmarks(input_image, landmarks)
        return tf.concat([input_image, texture, marked, output], axis=2)
