"""Small picture helpers for reports and contact sheets (numpy + OpenCV, no plotting library)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def image_grid(
    images: Sequence[np.ndarray], cols: int, labels: Sequence[str] | None = None, pad: int = 2,
    tile: int | None = None, background: int = 255,
) -> np.ndarray:
    """Tiles ``[h, w, 3]`` uint8 images row-major into one uint8 image.

    Images are resized to ``tile`` x ``tile`` when given (else all must share a size); ``labels``
    are written in small type under each tile.
    """
    import cv2

    if not images:
        raise ValueError("image_grid needs at least one image")
    if tile:
        images = [cv2.resize(np.asarray(im), (tile, tile), interpolation=cv2.INTER_AREA) for im in images]
    h, w = images[0].shape[:2]
    label_h = 14 if labels else 0
    rows = (len(images) + cols - 1) // cols
    out = np.full((rows * (h + label_h + pad) + pad, cols * (w + pad) + pad, 3), background, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + label_h + pad), pad + c * (w + pad)
        out[y:y + h, x:x + w] = np.asarray(im, dtype=np.uint8)[..., :3]
        if labels:
            cv2.putText(out, str(labels[i])[: label_chars(w)], (x, y + h + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.33,
                        (0, 0, 0), 1, cv2.LINE_AA)
    return out


def grid_tiles(sheet: np.ndarray, cols: int, tile: int, labelled: bool = True, pad: int = 2) -> list[np.ndarray]:
    """The ``tile`` x ``tile`` images of a sheet :func:`image_grid` wrote with ``cols`` columns,
    row-major (its inverse, labels left behind): how a report that reruns only some of its rows
    keeps the others' pictures. Trailing empty places of the last row come back too (plain
    background). Raises ValueError when the sheet's size is not one such a grid has."""
    sheet = np.asarray(sheet)
    label_h = 14 if labelled else 0
    step_y, step_x = tile + label_h + pad, tile + pad
    if sheet.ndim != 3 or (sheet.shape[0] - pad) % step_y or sheet.shape[1] != cols * step_x + pad:
        raise ValueError(f"grid_tiles: a {sheet.shape[:2]} sheet is not a grid of {cols} columns of "
                         f"{tile}-pixel tiles (labelled={labelled}, pad={pad})")
    rows = (sheet.shape[0] - pad) // step_y
    return [sheet[pad + r * step_y:pad + r * step_y + tile, pad + c * step_x:pad + c * step_x + tile, :3].copy()
            for r in range(rows) for c in range(cols)]


def label_chars(tile_width: int) -> int:
    """How many characters of a label :func:`image_grid` writes under a tile ``tile_width`` pixels
    wide (its small type is about 6 pixels a character)."""
    return max(1, int(tile_width) // 6)


def spread_label(text: str, cols: int, tile_width: int) -> list[str]:
    """``text`` cut into ``cols`` consecutive pieces, each as long as :func:`image_grid` writes under
    one tile, so that a label too long for one tile reads across a row of them (a picture
    ablation's row names run to 70 characters; one tile shows 21). Text beyond the row is dropped;
    pieces past the end of the text are empty."""
    if cols < 1:
        raise ValueError(f"spread_label: cols must be >= 1, got {cols}")
    n = label_chars(tile_width)
    return [text[i * n:(i + 1) * n] for i in range(cols)]


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray, color=(0, 255, 0), radius: int = 1) -> np.ndarray:
    """Copy of ``image`` with ``[n, 2]`` (x, y) landmarks drawn as dots."""
    import cv2

    out = np.ascontiguousarray(np.asarray(image, dtype=np.uint8).copy())
    for x, y in np.asarray(landmarks):
        cv2.circle(out, (int(round(x)), int(round(y))), radius, color, -1, cv2.LINE_AA)
    return out


def to_uint8(image):
    """Float image in [0, 1] -> uint8, rounded half to even and clipped: the one float -> uint8 rule.

    A NumPy array (or anything array-like) gives a NumPy array; a TensorFlow tensor stays a
    tensor, so the export's serving signatures convert inside the graph the same way.
    """
    if "tensorflow" in type(image).__module__:
        import tensorflow as tf

        with tf.name_scope("to_uint8"):
            return tf.cast(tf.round(tf.clip_by_value(tf.cast(image, tf.float32), 0.0, 1.0) * 255.0), tf.uint8)
    return np.clip(np.rint(np.asarray(image, np.float64) * 255.0), 0, 255).astype(np.uint8)
