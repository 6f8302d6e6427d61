"""The Surrey 3-D face model as a generic 3-D landmark model: head pose and projection.

The Surrey Face Model (``$NORMFACE_DATA/morphable_model``, loaded with ``eos-py``) is the project's
one 3-D face. Its mean shape taken at the ``ibug_to_sfm.txt`` vertices is a ready 3-D model of the
68 iBUG/dlib landmarks (50 of them: the jaw contour 1-8, 10-17 and the inner mouth corners have no
fixed vertex). Head pose comes from matching those points to detected 2-D landmarks with
``cv2.solvePnP``; the evaluation's frontalization baseline and the avatar
reuse the same model.

Frames: the model's own axes are x to the viewer's right, y up, z toward the viewer (mm). Here
everything is converted once to the camera frame of OpenCV: x right, y down, z away from the
camera. Angles are degrees: yaw (turn about the vertical axis), pitch (nod, about the horizontal
axis), roll (in-plane tilt); a frontal face is (0, 0, 0); :func:`rotation` fixes the signs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import tomllib
from pathlib import Path

import numpy as np

from normface.utils import paths

MODEL_DIR = "morphable_model"
SHAPE_FILE = "sfm_shape_3448.bin"
MAPPING_FILE = "ibug_to_sfm.txt"
CONTOUR_FILE = "sfm_model_contours.json"
SYMMETRY_FILE = "sfm_reference_symmetry.txt"
# Model frame (x right, y up, z to viewer) -> camera frame (x right, y down, z away): a 180-degree
# turn about x (determinant +1), so triangle winding and outward normals survive it.
MODEL_TO_CAMERA = np.array([1.0, -1.0, -1.0])
# The 68-point jaw: iBUG 1-8 (0-based 0-7) run down the subject's right side (image left),
# 10-17 (0-based 9-16) up the left; 9 (the chin, 0-based 8) has a fixed vertex.
RIGHT_JAW = tuple(range(0, 8))
LEFT_JAW = tuple(range(9, 17))
# A generic camera: focal length = this many image widths (about a 50 mm lens on 35 mm film).
FOCAL_LENGTH_WIDTHS = 1.5
# Camera distance (mm) used when projecting the model in tests and renders.
DEFAULT_DISTANCE_MM = 600.0


def model_dir(data_root: str | Path | None = None) -> Path:
    root = Path(data_root) if data_root else paths.data_dir()
    folder = root / MODEL_DIR
    if not (folder / SHAPE_FILE).is_file():
        raise FileNotFoundError(f"Surrey face model not found: {folder / SHAPE_FILE} (set {paths.DATA_ENV})")
    return folder


def surrey_model_missing(data_root: str | Path | None = None) -> str | None:
    """Why the avatar cannot be made here (the Surrey model's file is absent), or None."""
    try:
        model_dir(data_root)
    except FileNotFoundError as err:
        return f"{err}; the avatar needs the Surrey Face Model (non-commercial licence, not shipped)"
    return None


def read_landmark_mapping(path: str | Path) -> dict[int, int]:
    """iBUG landmark index (0-based) -> model vertex index, from ``ibug_to_sfm.txt`` (TOML)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
        mapping = data["landmark_mappings"]
    except (tomllib.TOMLDecodeError, KeyError) as err:
        raise ValueError(f"{path}: not an iBUG-to-model landmark mapping ({err})") from err
    return {int(k) - 1: int(v) for k, v in mapping.items()}


def read_contours(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(right [k], left [k])`` 0-based contour vertex indices from ``sfm_model_contours.json``
    (the subject's right and left outline, ordered from the top down to the chin)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())["model_contour"]
        right, left = data["right_contour"], data["left_contour"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a model contour file ({err})") from err
    return np.asarray(right, dtype=np.int64), np.asarray(left, dtype=np.int64)


def read_symmetry(path: str | Path) -> np.ndarray:
    """``[k]`` 0-based index of each vertex's mirror counterpart, from
    ``sfm_reference_symmetry.txt`` (one 1-based index per line, ``#`` comments)."""
    path = Path(path)
    try:
        values = np.loadtxt(path, comments="#", dtype=np.int64, ndmin=1)
    except ValueError as err:
        raise ValueError(f"{path}: not a vertex symmetry list ({err})") from err
    if values.ndim != 1 or values.size == 0 or values.min() < 1 or values.max() > values.size:
        raise ValueError(f"{path}: symmetry indices must be 1-based vertex indices in 1..{values.size}")
    return values - 1


@dataclasses.dataclass(frozen=True)
class ShapeModel:
    """The Surrey shape model in the camera frame (mm), as arrays.

    mean: ``[n, 3]`` mean vertices. basis: ``[n, 3, k]`` rescaled PCA basis (columns scaled by the
    square roots of the eigenvalues), so coefficients have a standard-normal prior.
    triangles: ``[m, 3]`` vertex indices, counter-clockwise seen from outside (outward normals).
    texcoords: ``[n, 2]`` (u, v) in [0, 1] with v growing downwards (image rows).
    landmarks: 68-point index -> vertex. right_contour / left_contour: jaw outline vertices.
    symmetry: ``[n]`` mirror vertex of every vertex (see :func:`mirror_vertices`).
    """

    mean: np.ndarray
    basis: np.ndarray
    triangles: np.ndarray
    texcoords: np.ndarray
    landmarks: dict[int, int]
    right_contour: np.ndarray
    left_contour: np.ndarray
    symmetry: np.ndarray

    @property
    def num_vertices(self) -> int:
        return self.mean.shape[0]

    @property
    def num_coefficients(self) -> int:
        return self.basis.shape[2]

    def shape(self, coefficients: np.ndarray | None = None) -> np.ndarray:
        """``[n, 3]`` vertices of the face with rescaled-PCA ``coefficients`` ``[<=k]`` (zeros: mean)."""
        if coefficients is None:
            return self.mean.copy()
        coefficients = np.asarray(coefficients, dtype=np.float64).ravel()
        k = coefficients.size
        if k > self.num_coefficients:
            raise ValueError(f"coefficients: at most {self.num_coefficients}, got {k}")
        return self.mean + self.basis[:, :, :k] @ coefficients


def mirror_vertices(mean: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``[n]`` mirror counterpart of every vertex: the model's own list for the ``len(reference)``
    vertices of the reference mesh, the nearest vertex to the x-mirrored position for the rest
    (the higher-resolution vertices the list does not cover; on the reference vertices this rule
    agrees with the list for ~98% of them)."""
    from scipy.spatial import cKDTree

    _, nearest = cKDTree(mean).query(mean * np.array([-1.0, 1.0, 1.0]))
    out = np.asarray(nearest, dtype=np.int64)
    out[: len(reference)] = reference
    return out


@functools.lru_cache(maxsize=2)
def _load_model(folder: str) -> ShapeModel:
    import eos

    folder_path = Path(folder)
    model = eos.morphablemodel.load_model(str(folder_path / SHAPE_FILE))
    pca = model.get_shape_model()
    mean = np.asarray(pca.get_mean(), dtype=np.float64).reshape(-1, 3)
    basis = np.asarray(pca.get_rescaled_pca_basis(), dtype=np.float64).reshape(mean.shape[0], 3, -1)
    mean_cam = mean * MODEL_TO_CAMERA
    basis_cam = basis * MODEL_TO_CAMERA[None, :, None]
    right, left = read_contours(folder_path / CONTOUR_FILE)
    symmetry = mirror_vertices(mean_cam, read_symmetry(folder_path / SYMMETRY_FILE))
    arrays = dict(
        mean=mean_cam, basis=basis_cam,
        triangles=np.asarray(pca.get_triangle_list(), dtype=np.int64),
        texcoords=np.asarray(model.get_texture_coordinates(), dtype=np.float64),
        right_contour=right, left_contour=left, symmetry=symmetry,
    )
    for value in arrays.values():
        value.setflags(write=False)  # shared through the cache: nobody may edit it in place
    return ShapeModel(landmarks=read_landmark_mapping(folder_path / MAPPING_FILE), **arrays)


def shape_model(data_root: str | Path | None = None) -> ShapeModel:
    """The Surrey shape model (cached; arrays are read-only)."""
    return _load_model(str(model_dir(data_root)))


def landmark_model(data_root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(indices [k], points [k, 3])``: the 68-point indices that have a model vertex, and the
    mean shape's 3-D positions of them in the camera frame (mm, centred on the face)."""
    model = shape_model(data_root)
    indices = np.array(sorted(model.landmarks), dtype=np.int64)
    return indices, model.mean[[model.landmarks[i] for i in indices]].copy()


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """``[3, 3]`` rotation (camera frame) for a head turned by yaw (about y), nodded by pitch
    (about x) and tilted by roll (about z), in degrees, applied as ``R = Rz @ Rx @ Ry``."""
    y, p, r = np.deg2rad([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def angles(rot: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`rotation`: (yaw, pitch, roll) in degrees."""
    pitch = np.arcsin(np.clip(rot[2, 1], -1.0, 1.0))
    yaw = np.arctan2(-rot[2, 0], rot[2, 2])
    roll = np.arctan2(-rot[0, 1], rot[1, 1])
    return tuple(float(v) for v in np.rad2deg([yaw, pitch, roll]))


def camera_matrix(width: int, height: int) -> np.ndarray:
    f = FOCAL_LENGTH_WIDTHS * width
    return np.array([[f, 0, (width - 1) / 2.0], [0, f, (height - 1) / 2.0], [0, 0, 1]])


def project(points: np.ndarray, rot: np.ndarray, translation: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """Pinhole projection of ``[k, 3]`` points after rotation and translation -> ``[k, 2]`` (x, y)."""
    cam = points @ rot.T + translation
    uvw = cam @ camera.T
    return uvw[:, :2] / uvw[:, 2:3]


def pose(
    landmarks: np.ndarray, width: int, height: int, data_root: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(R [3, 3], t [3])`` placing the mean shape's landmark points in front of the generic
    camera (:func:`camera_matrix`) so they project onto ``[68, 2]`` (x, y) ``landmarks``."""
    import cv2

    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (68, 2) or not np.all(np.isfinite(landmarks)):
        raise ValueError(f"head pose needs 68 finite (x, y) landmarks, got shape {landmarks.shape}")
    camera = camera_matrix(width, height)
    indices, points = landmark_model(data_root)
    # Start from a frontal face at the distance its eye spacing implies: without a guess the
    # solver can settle on the mirror solution (roll ~180 degrees) for real landmarks.
    model_iod = float(np.linalg.norm(points[indices == 45][0] - points[indices == 36][0]))
    image_iod = float(np.linalg.norm(landmarks[45] - landmarks[36]))
    distance = camera[0, 0] * model_iod / max(image_iod, 1e-6)
    rvec0 = np.zeros((3, 1))
    tvec0 = np.array([[0.0], [0.0], [distance]])
    ok, rvec, tvec = cv2.solvePnP(
        points, landmarks[indices], camera, None, rvec0, tvec0, useExtrinsicGuess=True,
        flags=cv2.SOLVEPNP_ITERATIVE,
    )
    if not ok:
        raise ValueError("pose: solvePnP found no solution for these landmarks")
    rot, _ = cv2.Rodrigues(rvec)
    return rot, tvec.ravel()


def head_pose(
    landmarks: np.ndarray, width: int, height: int, data_root: str | Path | None = None
) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a face from its ``[68, 2]`` (x, y) landmarks."""
    return angles(pose(landmarks, width, height, data_root)[0])
