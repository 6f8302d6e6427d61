"""Quality measures of a face photo, used to pick the frontal, neutral, sharp, colour training set.

Paper Sec. 6 filters a photo collection for near-frontal pose, neutral expression, no blur and no
monochrome. Each measure here is a number written to the data-prep manifest; the thresholds that
turn numbers into keep/reject decisions are flags of the averaging binary (``QualityThresholds``),
so they can change without re-detecting a single face.

Expression measures are computed on landmarks in the aligned frame (roll removed, eyes a fixed
distance apart) and expressed in units of the interocular distance (IOD), so they do not depend
on photo size.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from normface.faces import alignment
from normface.faces import face3d

# The generic 3-D model reads frontal studio faces (London + Canada sets) at a median pitch of
# about -7 degrees: real faces' brow/nose depth differs from the mean shape's.
FRONTAL_PITCH = -7.0
EXPRESSION_MODEL_FILE = Path(__file__).parent / "assets" / "expression_filter.json"
# iBUG 68-point indices.
MOUTH_LEFT, MOUTH_RIGHT = 48, 54
UPPER_LIP_TOP, LOWER_LIP_BOTTOM = 51, 57
INNER_UPPER = (61, 62, 63)
INNER_LOWER = (67, 66, 65)


@dataclasses.dataclass(frozen=True)
class QualityThresholds:
    """Keep a photo when every measure is inside these bounds (all are flags of the binaries).

    The smile model at its default 0.5 keeps 97% of held-out London neutral photos and rejects
    90% of their smiles (tests/faces/test_quality.py); on LFW it keeps only 36% of photos, leaving 211
    training people with 2+ photos. The project's training set is built with ``max_smile=0.7``
    (100% / 83% on the held-out London photos), trading a little purity for 278 such people
    (LFW is full of smiles); see WORKSPACE.md. Yaw up to 20 degrees keeps slightly turned heads.
    """

    max_yaw: float = 20.0
    max_pitch: float = 15.0   # around FRONTAL_PITCH, the generic model's reading of a frontal face
    max_roll: float = 20.0
    max_smile: float = 0.5    # probability from the expression model (expression_filter.json)
    min_sharpness: float = 15.0
    min_saturation: float = 0.06
    min_eye_distance: float = 20.0
    # Even light (light_measures): |left/right asymmetry| and the luminance gradient per IOD.
    # 0.35 / 0.4 keep every London and Canada studio photo and ~80% of LFW; they remove faces lit
    # strongly from one side (a third brighter on one half).
    max_light_asymmetry: float = 0.35
    max_light_gradient: float = 0.4

    def __post_init__(self):
        for name, (low, high) in THRESHOLD_BOUNDS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name} must lie in [{low:g}, {high:g}], got {value}")


# The range of each threshold (also the flags' bounds in data_prep/average_faces.py).
THRESHOLD_BOUNDS = {
    "max_yaw": (0.0, 180.0), "max_pitch": (0.0, 180.0), "max_roll": (0.0, 180.0), "max_smile": (0.0, 1.0),
    "min_sharpness": (0.0, float("inf")), "min_saturation": (0.0, 1.0), "min_eye_distance": (0.0, float("inf")),
    "max_light_asymmetry": (0.0, float("inf")), "max_light_gradient": (0.0, float("inf")),
}


def expression_features(aligned_landmarks: np.ndarray) -> dict[str, float]:
    """Expression features in IOD units from aligned ``[68, 2]`` landmarks.

    No single one separates smiles from neutral faces (people's mouths differ more than a smile
    changes them; best single AUC ~0.92 on the London set), so the filter combines them
    (:class:`ExpressionModel`): mouth opening, width (outer and inner), height, corner lift above
    the lip centre, corner height below the nose, mouth width over jaw width, upper-lip
    thickness, eye opening (eyes narrow in a smile).
    """
    lm = np.asarray(aligned_landmarks, dtype=np.float64)
    eyes = alignment.eye_centers(lm)
    iod = float(np.linalg.norm(eyes[1] - eyes[0]))
    if iod <= 0:
        raise ValueError("landmarks have coincident eye centres")

    def dist(a: int, b: int) -> float:
        return float(np.linalg.norm(lm[a] - lm[b])) / iod

    def eye_open(first: int) -> float:
        return (dist(first + 1, first + 5) + dist(first + 2, first + 4)) / (2.0 * dist(first, first + 3))

    corners_y = 0.5 * (lm[MOUTH_LEFT, 1] + lm[MOUTH_RIGHT, 1])
    centre_y = 0.5 * (lm[UPPER_LIP_TOP, 1] + lm[LOWER_LIP_BOTTOM, 1])
    return {
        "mouth_open": max(float(np.mean(lm[list(INNER_LOWER), 1] - lm[list(INNER_UPPER), 1])), 0.0) / iod,
        "mouth_width": dist(MOUTH_LEFT, MOUTH_RIGHT),
        "inner_width": dist(60, 64),
        "mouth_height": dist(UPPER_LIP_TOP, LOWER_LIP_BOTTOM),
        "corner_lift": float(centre_y - corners_y) / iod,
        "corner_below_nose": float(corners_y - lm[33, 1]) / iod,
        "width_over_jaw": dist(MOUTH_LEFT, MOUTH_RIGHT) / dist(4, 12),
        "upper_lip": dist(UPPER_LIP_TOP, 62),
        "eye_open": 0.5 * (eye_open(36) + eye_open(42)),
    }


@dataclasses.dataclass(frozen=True)
class ExpressionModel:
    """Logistic smile classifier over standardized :func:`expression_features`."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    fitted_on: str = ""
    # Person ids (normface.data.splits) whose photos the model was fitted on, so tests can check
    # them against the splits.
    fitted_people: tuple[str, ...] = ()

    def smile_probability(self, feats: dict[str, float]) -> float:
        x = (np.array([feats[k] for k in self.features]) - self.mean) / self.std
        return float(1.0 / (1.0 + np.exp(-(x @ np.array(self.weights) + self.bias))))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "ExpressionModel":
        path = Path(path) if path else EXPRESSION_MODEL_FILE
        if not path.is_file():
            raise FileNotFoundError(f"expression model not found: {path} (fit it with experiments/fit_expression_filter.py)")
        data = json.loads(path.read_text())
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def fit_expression_model(
    feats: list[dict[str, float]], smiling: list[bool], l2: float = 0.01, steps: int = 5000,
    fitted_on: str = "", fitted_people: tuple[str, ...] = (),
) -> ExpressionModel:
    """Fits :class:`ExpressionModel` by L2-regularized logistic regression (gradient descent);
    ``fitted_on`` describes the examples, ``fitted_people`` lists whose photos they are."""
    names = tuple(sorted(feats[0]))
    x = np.array([[f[k] for k in names] for f in feats], dtype=np.float64)
    y = np.asarray(smiling, dtype=np.float64)
    if len(set(y.tolist())) != 2:
        raise ValueError("fitting the expression model needs both neutral and smiling examples")
    mean, std = x.mean(0), x.std(0) + 1e-9
    z = (x - mean) / std
    w, b = np.zeros(len(names)), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(z @ w + b)))
        w -= 0.5 * (z.T @ (p - y) / len(y) + l2 * w)
        b -= 0.5 * float(np.mean(p - y))
    return ExpressionModel(names, tuple(mean), tuple(std), tuple(w), float(b), fitted_on,
                           tuple(sorted(set(fitted_people))))


def sharpness(grey: np.ndarray) -> float:
    """Variance of the Laplacian of a ``[h, w]`` grey image (uint8 scale); low = blurred."""
    import cv2

    return float(cv2.Laplacian(np.asarray(grey, dtype=np.float64), cv2.CV_64F).var())


def saturation(rgb: np.ndarray) -> float:
    """Mean HSV saturation in [0, 1] of a ``[h, w, 3]`` uint8 image; ~0 for greyscale photos."""
    rgb = np.asarray(rgb, dtype=np.float64)
    top, bottom = rgb.max(-1), rgb.min(-1)
    sat = np.where(top > 0, (top - bottom) / np.maximum(top, 1e-9), 0.0)
    return float(sat.mean())


def face_region(aligned: np.ndarray, template: alignment.AlignmentTemplate) -> np.ndarray:
    """The central face box of an aligned image: 2 IOD wide, from the brows to the chin."""
    eyes = template.eye_centers()
    cx, cy = eyes.mean(0)
    iod = template.eye_distance
    x0, x1 = int(round(cx - iod)), int(round(cx + iod)) + 1
    y0, y1 = int(round(cy - 0.6 * iod)), int(round(cy + 1.9 * iod)) + 1
    h, w = aligned.shape[:2]
    return aligned[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)]


def light_measures(aligned: np.ndarray, aligned_landmarks: np.ndarray) -> dict[str, float]:
    """How evenly the face is lit, inside the convex hull of its aligned ``[68, 2]`` landmarks.

    - ``light_asymmetry``: (mean luminance of the image-right half - the left half) / the hull's
      mean luminance, comparing only pixels whose mirror image about the face's midline (the
      vertical through the eye centres' midpoint; the aligned frame has no roll) is in the hull
      too. 0 for an evenly lit frontal face; about +-0.2 or more for light from one side.
    - ``light_gradient``: magnitude of the least-squares luminance plane over the hull, as the
      relative change of luminance per interocular distance (IOD); ``light_gradient_angle`` its
      direction in degrees (0: brighter to the image right, 90: brighter downwards).

    A yawed head also reads as asymmetric. Stage 2's ``light`` filter bounds both
    (:class:`QualityThresholds`).
    """
    import cv2

    lm = np.asarray(aligned_landmarks, dtype=np.float64)
    lum = np.asarray(aligned, dtype=np.float64)[..., :3] @ np.array([0.299, 0.587, 0.114])
    h, w = lum.shape
    mask = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(lm).astype(np.int32)), 1)
    ys, xs = np.nonzero(mask)
    zero = {"light_asymmetry": 0.0, "light_gradient": 0.0, "light_gradient_angle": 0.0}
    if len(xs) < 10:
        return zero
    values = lum[ys, xs]
    mean = max(float(values.mean()), 1.0)
    eyes = alignment.eye_centers(lm)
    cx, cy = eyes.mean(0)
    iod = max(float(np.linalg.norm(eyes[1] - eyes[0])), 1e-6)
    mirror = np.round(2.0 * cx - xs).astype(int)
    paired = (mirror >= 0) & (mirror < w)
    paired[paired] &= mask[ys[paired], mirror[paired]] > 0
    left, right = paired & (xs < cx), paired & (xs > cx)
    asym = 0.0
    if left.any() and right.any():
        asym = (float(values[right].mean()) - float(values[left].mean())) / mean
    design = np.stack([np.ones_like(values), (xs - cx) / iod, (ys - cy) / iod], axis=1)
    (_, gx, gy), *_ = np.linalg.lstsq(design, values, rcond=None)
    return {"light_asymmetry": asym, "light_gradient": float(np.hypot(gx, gy)) / mean,
            "light_gradient_angle": float(np.degrees(np.arctan2(gy, gx)))}


def measure(
    photo_landmarks: np.ndarray,
    photo_shape: tuple[int, int],
    aligned: np.ndarray,
    aligned_landmarks: np.ndarray,
    template: alignment.AlignmentTemplate,
    expression_model: ExpressionModel,
    data_root=None,
) -> dict[str, float]:
    """All measures of one face: pose (deg), expression features (IOD units) and smile
    probability, sharpness, saturation, eye distance in the photo (px), and how evenly the face
    is lit (:func:`light_measures`).

    Sharpness and saturation are read inside :func:`face_region` of the aligned image, so the
    background and the photo's resolution matter less.
    """
    height, width = photo_shape
    yaw, pitch, roll = face3d.head_pose(photo_landmarks, width, height, data_root)
    region = face_region(aligned, template)
    grey = region.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    eyes = alignment.eye_centers(photo_landmarks)
    feats = expression_features(aligned_landmarks)
    return {
        "yaw": yaw,
        "pitch": pitch,
        "roll": roll,
        **feats,
        "smile": expression_model.smile_probability(feats),
        "sharpness": sharpness(grey),
        "saturation": saturation(region),
        "eye_distance": float(np.linalg.norm(eyes[1] - eyes[0])),
        **light_measures(aligned, aligned_landmarks),
    }


def rejections(measures: dict[str, float], t: QualityThresholds) -> list[str]:
    """Names of the filters a face fails (empty = keep)."""
    checks = {
        "pose": abs(measures["yaw"]) <= t.max_yaw and abs(measures["pitch"] - FRONTAL_PITCH) <= t.max_pitch
        and abs(measures["roll"]) <= t.max_roll,
        "expression": measures["smile"] <= t.max_smile,
        "blur": measures["sharpness"] >= t.min_sharpness,
        "monochrome": measures["saturation"] >= t.min_saturation,
        "size": measures["eye_distance"] >= t.min_eye_distance,
        # Manifests written before the light measures existed pass this filter.
        "light": abs(measures.get("light_asymmetry", 0.0)) <= t.max_light_asymmetry
        and measures.get("light_gradient", 0.0) <= t.max_light_gradient,
    }
    return [name for name, ok in checks.items() if not ok]
