"""Warping-based frontalization: the evaluation's baseline (Hassner et al. 2015 style).

The paper argues that frontalizing a photo by warping it onto a 3-D face keeps its occlusions,
expression and lighting, while normalization from identity features removes them. This module is
the warping side of that comparison: the Surrey mean face (``normface.faces.face3d``) is posed to the
photo's 68 landmarks (``solvePnP``), every pixel of the frontal, template-aligned output looks up
its 3-D surface point and samples the photo where that point projects. Output pixels whose
surface point is hidden in the photo (self-occlusion, turned heads) take the mirror pixel when
that one is visible (Hassner's soft symmetry, simplified to a hard choice); pixels off the face
surface keep the similarity-aligned photo.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from normface.faces import alignment
from normface.faces import face3d
from normface.faces.alignment import AlignmentTemplate

# Distance (mm) of the virtual frontal camera; with a long focal length the view is near-orthographic.
FRONTAL_DISTANCE_MM = 2000.0
# Depth tolerance (mm) of the visibility test: a surface point is visible when it is within this
# of the nearest surface in the photo's depth buffer.
VISIBILITY_TOLERANCE_MM = 6.0


@dataclasses.dataclass(frozen=True)
class FrontalReference:
    """The mean face rendered frontally into a template frame: per output pixel, its 3-D point."""

    template: AlignmentTemplate
    points: np.ndarray  # [s, s, 3] camera-frame mm, NaN off the face surface
    mask: np.ndarray    # [s, s] bool, on the face surface
    vertices: np.ndarray  # [N, 3] mean mesh


@functools.lru_cache(maxsize=4)
def frontal_reference(template: AlignmentTemplate, data_root: str | None = None) -> FrontalReference:
    """Builds (and caches) the frontal reference for a template."""
    from scipy.interpolate import griddata

    vertices = face3d.shape_model(data_root).mean
    indices, lm3d = face3d.landmark_model(data_root)
    size = template.size
    camera = face3d.camera_matrix(size, size) * np.array([[FRONTAL_DISTANCE_MM / 600.0], [FRONTAL_DISTANCE_MM / 600.0], [1.0]])
    camera[0, 2] = camera[1, 2] = (size - 1) / 2.0
    translation = np.array([0.0, 0.0, FRONTAL_DISTANCE_MM])
    uv = face3d.project(vertices, np.eye(3), translation, camera)
    landmarks = np.zeros((68, 2))
    landmarks[indices] = face3d.project(lm3d, np.eye(3), translation, camera)
    matrix = alignment.similarity_to_template(landmarks, template)
    uv = alignment.apply_affine(uv, matrix)
    # Only surface facing the frontal camera (z decreasing toward it) is visible from the front.
    front = vertices[:, 2] < np.percentile(vertices[:, 2], 85)
    grid_y, grid_x = np.mgrid[0:size, 0:size]
    points = griddata(uv[front], vertices[front], (grid_x, grid_y), method="linear")
    mask = np.all(np.isfinite(points), axis=-1)
    return FrontalReference(template, points, mask, vertices)


def _visible(points: np.ndarray, rot: np.ndarray, t: np.ndarray, camera: np.ndarray, shape, vertices) -> np.ndarray:
    """Whether each 3-D point is the nearest surface along its ray in the photo (depth buffer of
    the mesh's vertices splatted at 1/3 resolution)."""
    h, w = shape
    cam_vertices = vertices @ rot.T + t
    uv = face3d.project(vertices, rot, t, camera)
    scale = 3
    depth = np.full((h // scale + 2, w // scale + 2), np.inf)
    cols = np.clip((uv[:, 0] / scale).astype(int), 0, depth.shape[1] - 1)
    rows = np.clip((uv[:, 1] / scale).astype(int), 0, depth.shape[0] - 1)
    np.minimum.at(depth, (rows, cols), cam_vertices[:, 2])
    cam_points = points @ rot.T + t
    puv = face3d.project(points, rot, t, camera)
    pc = np.clip((puv[:, 0] / scale).astype(int), 0, depth.shape[1] - 1)
    pr = np.clip((puv[:, 1] / scale).astype(int), 0, depth.shape[0] - 1)
    nearest = np.minimum.reduce([np.roll(np.roll(depth, dy, 0), dx, 1)[pr, pc] for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    return cam_points[:, 2] <= nearest + VISIBILITY_TOLERANCE_MM


def frontalize(
    photo: np.ndarray, landmarks: np.ndarray, template: AlignmentTemplate, data_root: str | None = None
) -> np.ndarray:
    """Frontalizes a photo into the template frame.

    Args:
      photo: ``[h, w, 3]`` uint8 RGB.
      landmarks: ``[68, 2]`` (x, y) landmarks of the face in the photo.
      template: output frame (same as the normalized faces, so they can be compared).

    Returns:
      ``[size, size, 3]`` uint8 frontal view.
    """
    import cv2

    ref = frontal_reference(template, data_root)
    h, w = photo.shape[:2]
    camera = face3d.camera_matrix(w, h)
    rot, t = face3d.pose(landmarks, w, h, data_root)
    background, _, _ = alignment.align_image(photo, landmarks, template)
    pts = ref.points[ref.mask]
    uv = face3d.project(pts, rot, t, camera).astype(np.float32)
    visible = _visible(pts, rot, t, camera, (h, w), ref.vertices)
    size = template.size
    map_xy = np.full((size, size, 2), -1.0, np.float32)
    map_xy[ref.mask] = uv
    vis = np.zeros((size, size), np.uint8)
    vis[ref.mask] = visible
    # The splatted depth buffer has holes: a median filter removes isolated misses.
    vis = cv2.medianBlur(vis * 255, 5) > 127
    # Soft symmetry, simplified: hidden pixels take their mirror (about the template's centre line).
    mirror_xy = map_xy[:, ::-1]
    use_mirror = ref.mask & ~vis & vis[:, ::-1]
    map_xy[use_mirror] = mirror_xy[use_mirror]
    sampled = cv2.remap(photo, map_xy[..., 0], map_xy[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = background.copy()
    out[ref.mask] = sampled[ref.mask]
    return out
