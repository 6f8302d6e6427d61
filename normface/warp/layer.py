"""``SplineWarp``: the warp as a Keras layer, so the decoder's graph places its texture on its
landmarks (paper Sec. 4) and the model saves and loads with the layer inside.
"""

from __future__ import annotations

import tensorflow as tf
import keras

from normface.warp.common import check_spline_params
from normface.warp.numpy_warp import check_resampling
from normface.warp.sparse import LANDMARK_REGULARIZATION, warp_to_landmarks


@keras.saving.register_keras_serializable(package="normface")
class SplineWarp(keras.layers.Layer):
    """Keras layer: warps a texture so its source landmarks land on destination landmarks.

    Call with ``[image, source_xy, dest_xy]``: ``image`` ``[batch, h, w, c]``, landmarks
    ``[batch, n, 2]`` in (x, y) pixels (the batch size may be dynamic). Returns the warped image,
    or ``(warped, flow_xy)`` with ``return_flow=True``. ``resampling``: ``"bilinear"`` (the
    paper's, tfa's) or ``"bicubic"`` (sharper; issue 28). Works under ``tf.function`` and
    ``jit_compile=True``.
    """

    def __init__(
        self,
        interpolation_order: int = 1,
        regularization_weight: float = LANDMARK_REGULARIZATION,
        num_boundary_points: int = 4,
        return_flow: bool = False,
        resampling: str = "bilinear",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.interpolation_order = check_spline_params(
            interpolation_order, regularization_weight, "interpolation_order"
        )
        self.regularization_weight = float(regularization_weight)
        self.num_boundary_points = int(num_boundary_points)
        self.return_flow = bool(return_flow)
        self.resampling = check_resampling(resampling)

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 3:
            raise ValueError("SplineWarp expects [image, source_xy, dest_xy]")
        image, source_xy, dest_xy = inputs
        dtype = image.dtype
        warped, flow = warp_to_landmarks(
            image,
            tf.cast(source_xy, dtype),
            tf.cast(dest_xy, dtype),
            self.interpolation_order,
            self.regularization_weight,
            self.num_boundary_points,
            self.resampling,
        )
        return (warped, flow) if self.return_flow else warped

    def compute_output_shape(self, input_shape):
        image_shape = tuple(input_shape[0])
        if self.return_flow:
            return image_shape, image_shape[:-1] + (2,)
        return image_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            interpolation_order=self.interpolation_order,
            regularization_weight=self.regularization_weight,
            num_boundary_points=self.num_boundary_points,
            return_flow=self.return_flow,
            resampling=self.resampling,
        )
        return config
