"""The Surrey 3-D face model as a generic 3-D landmark model: head pose and projection.

The Surrey Face Model (``$NORMFACE_DATA/morphable_model``, loaded with ``eos-py``) is the project's
one 3-D face. Its mean shape taken at the ``ibug_to_sfm.txt`` vertices is a ready 3-D model of the
68 iBUG/dlib landmarks (52 of them: the jaw contour 1-8, 10-17 and the inner mouth corners have no
fixed vertex). Head pose comes from matching those points to detected 2-D landmarks with
``cv2.solvePnP``; the evaluation's frontalization baseline (issue 8) and the avatar (issue 9)
reuse the same model.

Frames: the model's own axes are x to the viewer's right, y up, z toward the viewer (mm). Here
everything is converted once to the camera frame of OpenCV: x right, y down, z away from the
camera. Angles are degrees: yaw (turn about the vertical axis), pitch (nod, about the horizontal
axis), roll (in-plane tilt); a frontal face is (0, 0, 0); :func:`rotation` fixes the signs.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path

import numpy as np

from normface import paths

MODEL_DIR = "morphable_model"
SHAPE_FILE = "sfm_shape_3448.bin"
MAPPING_FILE = "ibug_to_sfm.txt"
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


def read_landmark_mapping(path: str | Path) -> dict[int, int]:
    """iBUG landmark index (0-based) -> model vertex index, from ``ibug_to_sfm.txt`` (TOML)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
        mapping = data["landmark_mappings"]
    except (tomllib.TOMLDecodeError, KeyError) as err:
        raise ValueError(f"{path}: not an iBUG-to-model landmark mapping ({err})") from err
    return {int(k) - 1: int(v) for k, v in mapping.items()}


@functools.lru_cache(maxsize=4)
def _load(folder: str) -> tuple[np.ndarray, np.ndarray]:
    import eos

    model = eos.morphablemodel.load_model(str(Path(folder) / SHAPE_FILE))
    mean = np.asarray(model.get_shape_model().get_mean(), dtype=np.float64).reshape(-1, 3)
    mapping = read_landmark_mapping(Path(folder) / MAPPING_FILE)
    indices = np.array(sorted(mapping), dtype=np.int64)
    vertices = mean[[mapping[i] for i in indices]]
    # Model frame (x right, y up, z to viewer) -> camera frame (x right, y down, z away).
    return indices, vertices * np.array([1.0, -1.0, -1.0])


def landmark_model(data_root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(indices [k], points [k, 3])``: the 68-point indices that have a model vertex, and the
    mean shape's 3-D positions of them in the camera frame (mm, centred on the face)."""
    indices, points = _load(str(model_dir(data_root)))
    return indices.copy(), points.copy()


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


def head_pose(
    landmarks: np.ndarray, width: int, height: int, data_root: str | Path | None = None
) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a face from its ``[68, 2]`` (x, y) landmarks."""
    rot, _ = solve_pose(landmarks, camera_matrix(width, height), data_root)
    return angles(rot)


@functools.lru_cache(maxsize=4)
def _load_mesh(folder: str) -> tuple[np.ndarray, np.ndarray]:
    import eos

    model = eos.morphablemodel.load_model(str(Path(folder) / SHAPE_FILE))
    shape = model.get_shape_model()
    mean = np.asarray(shape.get_mean(), dtype=np.float64).reshape(-1, 3) * np.array([1.0, -1.0, -1.0])
    triangles = np.asarray(shape.get_triangle_list(), dtype=np.int64)
    return mean, triangles


def mean_mesh(data_root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(vertices [N, 3], triangles [T, 3])`` of the model's mean face, in the camera frame (mm)."""
    vertices, triangles = _load_mesh(str(model_dir(data_root)))
    return vertices.copy(), triangles.copy()


def solve_pose(
    landmarks: np.ndarray, camera: np.ndarray, data_root: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(R [3, 3], t [3])`` placing the model's 3-D landmarks on ``[68, 2]`` (x, y) landmarks."""
    import cv2

    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (68, 2) or not np.all(np.isfinite(landmarks)):
        raise ValueError(f"pose needs 68 finite (x, y) landmarks, got shape {landmarks.shape}")
    indices, points = landmark_model(data_root)
    # Start from a frontal face at the distance its eye spacing implies: without a guess the
    # solver can settle on the mirror solution (roll ~180 degrees) for real landmarks.
    model_iod = float(np.linalg.norm(points[indices == 45][0] - points[indices == 36][0]))
    image_iod = float(np.linalg.norm(landmarks[45] - landmarks[36]))
    distance = camera[0, 0] * model_iod / max(image_iod, 1e-6)
    ok, rvec, tvec = cv2.solvePnP(
        points, landmarks[indices], camera, None, np.zeros((3, 1)), np.array([[0.0], [0.0], [distance]]),
        useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE,
    )
    if not ok:
        raise ValueError("pose: solvePnP found no solution for these landmarks")
    rot, _ = cv2.Rodrigues(rvec)
    return rot, tvec.reshape(3)
