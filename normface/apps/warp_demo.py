"""The warp demo: a studio face with hand-placed control-point moves (a lifted smile).

Shows the paper's Sec. 4 warp alone on a real photo (``normface warp-demo``): the mouth corners are lifted and pulled outward while the eyes, nose, chin and the image border
stay put. The output PNG is ``original (with arrows) | warped``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from normface.utils import io_utils
from normface.utils import paths

DEMO_PHOTO = Path("studio") / "london_neutral" / "001_03.jpg"
# Hand-placed (x, y) points on the 512x512 demo photo, as fractions of its width and height:
# (source, destination). Anchors have source == destination.
DEMO_MOVES = (
    ((228 / 512, 325 / 512), (220 / 512, 311 / 512)),  # left mouth corner: up and out
    ((285 / 512, 325 / 512), (293 / 512, 311 / 512)),  # right mouth corner: up and out
    ((256 / 512, 333 / 512), (256 / 512, 335 / 512)),  # lower lip centre: slightly down
    ((210 / 512, 240 / 512), (210 / 512, 240 / 512)),  # eyes, nose and chin stay
    ((297 / 512, 238 / 512), (297 / 512, 238 / 512)),
    ((255 / 512, 290 / 512), (255 / 512, 290 / 512)),
    ((256 / 512, 375 / 512), (256 / 512, 375 / 512)),
)


def demo_points(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The demo's ``[n, 2]`` (x, y) source and destination points for an image of this size."""
    scale = np.array([width, height], np.float64)
    src = np.array([m[0] for m in DEMO_MOVES]) * scale
    dst = np.array([m[1] for m in DEMO_MOVES]) * scale
    return src, dst


def draw_arrows(image: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Copy of ``image`` with an arrow per moved point and a dot per anchor."""
    import cv2

    out = np.ascontiguousarray(image.copy())
    for (sx, sy), (dx, dy) in zip(src, dst):
        start, end = (int(round(sx)), int(round(sy))), (int(round(dx)), int(round(dy)))
        if start == end:
            cv2.circle(out, start, 3, (40, 160, 255), -1, cv2.LINE_AA)
        else:
            cv2.arrowedLine(out, start, end, (255, 40, 40), 2, cv2.LINE_AA, tipLength=0.4)
    return out


def run_warp_demo(output: str | Path, photo: str | Path | None = None) -> Path:
    """Warps the demo photo and writes ``original | warped`` to ``output`` (a .png path or folder).

    Returns the written path. Raises FileNotFoundError naming the photo when it is missing.
    """
    import tensorflow as tf

    from normface import warp

    photo = Path(photo) if photo else paths.require_data_dir() / DEMO_PHOTO
    if not photo.is_file():
        raise FileNotFoundError(f"demo photo not found: {photo}")
    image = io_utils.read_rgb(photo)
    height, width = image.shape[:2]
    src, dst = demo_points(width, height)
    warped, _ = warp.warp_to_landmarks(
        tf.constant(image[None], tf.float32),
        tf.constant(src[None], tf.float32),
        tf.constant(dst[None], tf.float32),
        interpolation_order=1,
        num_boundary_points=4,
    )
    warped = np.clip(np.rint(warped.numpy()[0]), 0, 255).astype(np.uint8)
    panel = np.concatenate([draw_arrows(image, src, dst), warped], axis=1)
    output = Path(output)
    if output.suffix.lower() != ".png":
        output = output / "warp_demo.png"
    io_utils.save_image_atomic(output, panel)
    return output
