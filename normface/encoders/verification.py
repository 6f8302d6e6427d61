"""Face verification with an identity encoder: LFW pairs, cached descriptors, k-fold accuracy.

Checks that a converted encoder reproduces its published verification accuracy (dlib's face
ResNet: 99.38% on LFW) with the standard View 2 protocol: 10 folds of 300 same + 300 different
pairs; for each fold the distance threshold is chosen on the other 9 folds and accuracy measured
on it; the mean and standard deviation over folds are reported.

Faces: the dlib detection nearest the image centre (LFW crops are centred on the labelled person;
the largest face is sometimes a bystander), 5 landmarks, 150x150 chip; images where the detector
finds no face (optionally after dlib's CNN detector) fall back to landmarks inside a centred box
(counted and reported). Descriptors are cached per
image in one ``.npz`` (written atomically, checkpointed) so reruns are fast.

Jittered descriptors (``ChipOptions.jitter``) follow dlib's python ``compute_face_descriptor(...,
num_jitters=N)`` exactly (dlib/tools/python/src/face_recognition.cpp): for ``N <= 1`` the
descriptor is the network's output on the chip; for ``N > 1`` it is the mean of the network's
outputs on ``N`` copies of the chip from ``dlib::jitter_image`` (each slightly rotated, zoomed,
translated, and mirrored with probability 1/2); the unjittered chip is not included. dlib's
published 99.38% on LFW used such jittered descriptors (``num_jitters=100``). The python
``dlib.jitter_image`` draws from one process-wide, unseedable generator with a fixed start, so a
fresh process jittering the same chips in the same order gets the same copies.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from normface.faces.chips import dlib_face_chip, extract_chips
from normface.faces.detection import as_rgb_uint8, detect_face
from normface.encoders.base import IdentityEncoder
from normface.utils.io_utils import atomic_path, read_rgb

NUM_FOLDS = 10
CHIP_METHODS = ("dlib", "tf")  # dlib.get_face_chip, or extract_chips (differentiable)
CHECKPOINT_EVERY = 256  # images between cache writes
ENCODE_BATCH = 32

# (chip [s, s, 3] uint8, n) -> n jittered copies [n, s, s, 3] uint8.
JitterFn = Callable[[np.ndarray, int], np.ndarray]


@dataclass(frozen=True)
class FacePair:
    """Two image paths, whether they show the same person, and the fold (0-based)."""

    path_a: Path
    path_b: Path
    same: bool
    fold: int


def lfw_image_path(lfw_root: Path, name: str, number: int) -> Path:
    return Path(lfw_root) / name / f"{name}_{number:04d}.jpg"


def read_lfw_pairs(pairs_file: str | os.PathLike, lfw_root: str | os.PathLike) -> list[FacePair]:
    """Parses LFW's ``pairs.txt`` (header ``folds<TAB>n``, then per fold n same and n different
    pairs). Raises ValueError naming the file and line on malformed input."""
    pairs_file, lfw_root = Path(pairs_file), Path(lfw_root)
    lines = pairs_file.read_text().split("\n")
    try:
        folds, per_class = (int(v) for v in lines[0].split())
    except ValueError as err:
        raise ValueError(f"{pairs_file}:1: expected 'folds<TAB>pairs_per_class'") from err
    pairs = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        index = len(pairs)
        fold, within = divmod(index, 2 * per_class)
        fields = line.split()
        if len(fields) == 3:
            a = lfw_image_path(lfw_root, fields[0], int(fields[1]))
            b = lfw_image_path(lfw_root, fields[0], int(fields[2]))
            same = True
        elif len(fields) == 4:
            a = lfw_image_path(lfw_root, fields[0], int(fields[1]))
            b = lfw_image_path(lfw_root, fields[2], int(fields[3]))
            same = False
        else:
            raise ValueError(f"{pairs_file}:{number}: expected 3 or 4 fields, got {len(fields)}")
        if same != (within < per_class):
            raise ValueError(f"{pairs_file}:{number}: pair kind out of the folds' order")
        pairs.append(FacePair(a, b, same, fold))
    if len(pairs) != folds * 2 * per_class:
        raise ValueError(f"{pairs_file}: {len(pairs)} pairs, expected {folds * 2 * per_class}")
    return pairs


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The distance threshold (same iff distance < threshold) with the best accuracy."""
    order = np.sort(np.unique(distances))
    candidates = np.concatenate([[order[0] - 1e-6], (order[1:] + order[:-1]) / 2, [order[-1] + 1e-6]])
    accuracies = [np.mean((distances < t) == same) for t in candidates]
    return float(candidates[int(np.argmax(accuracies))])


def kfold_accuracy(distances: np.ndarray, same: np.ndarray, folds: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per-fold (accuracies, thresholds): threshold fitted on the other folds, scored on this one."""
    distances, same, folds = np.asarray(distances), np.asarray(same, bool), np.asarray(folds)
    accuracies, thresholds = [], []
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        threshold = best_threshold(distances[train], same[train])
        accuracies.append(np.mean((distances[test] < threshold) == same[test]))
        thresholds.append(threshold)
    return np.array(accuracies), np.array(thresholds)


@dataclass(frozen=True)
class ChipOptions:
    """How an image becomes a descriptor.

    chip_method: ``dlib`` (dlib.get_face_chip) or ``tf`` (extract_chips, differentiable).
    choose: which detected face (``center`` for face-centred crops like LFW, or ``largest``).
    detectors: tried in order until one finds a face; then the centred-box fallback.
    flip_average: also encode the mirrored chip and average the two descriptors (test-time
      augmentation; off for the plain network figure).
    jitter: dlib's ``num_jitters``: above 1, a face's descriptor is the mean over that many
      ``dlib.jitter_image`` copies of its chip (see the module docstring); 0 or 1 = off.
    """

    chip_method: str = "dlib"
    choose: str = "center"
    detectors: tuple[str, ...] = ("hog",)
    flip_average: bool = False
    jitter: int = 0

    def __post_init__(self):
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, (int, np.integer)) \
                or self.jitter < 0:
            raise ValueError(f"jitter: expected an int >= 0 (number of jittered copies, 0 = off); "
                             f"got {self.jitter!r}")

    def tag(self) -> str:
        """A short name for cache files, e.g. ``dlib_center_hog``, ``dlib_center_hog_jitter10``."""
        return "_".join([self.chip_method, self.choose, "+".join(self.detectors)]
                        + (["flip"] if self.flip_average else [])
                        + ([f"jitter{self.jitter}"] if self.jitter > 1 else []))


def face_chip(image: np.ndarray, options: ChipOptions = ChipOptions()) -> tuple[np.ndarray, str]:
    """(150x150 chip ``[150, 150, 3]``, detector that found the face or ``"center"``)."""
    found = detect_face(image, choose=options.choose, detectors=options.detectors)
    if options.chip_method == "dlib":
        chip = dlib_face_chip(image, found.landmarks)
    elif options.chip_method == "tf":
        chip = extract_chips(image[None].astype(np.float32), found.landmarks[None])[0].numpy()
    else:
        raise ValueError(f"chip_method: expected one of {CHIP_METHODS}; got {options.chip_method!r}")
    return chip, found.detector


def dlib_jitter(chip: np.ndarray, num_jitters: int) -> np.ndarray:
    """``num_jitters`` copies ``[n, s, s, 3]`` uint8 of a square RGB ``chip`` by
    ``dlib.jitter_image`` (colours undisturbed, as in dlib's ``compute_face_descriptor``)."""
    import dlib

    chip = as_rgb_uint8(chip, "chip")
    if chip.shape[0] != chip.shape[1]:
        raise ValueError(f"chip: dlib.jitter_image needs a square chip; got shape {chip.shape}")
    if num_jitters < 1:
        raise ValueError(f"num_jitters: expected >= 1; got {num_jitters}")
    copies = dlib.jitter_image(chip, num_jitters=int(num_jitters), disturb_colors=False)
    return np.stack([np.asarray(c, dtype=np.uint8) for c in copies])


def chip_descriptors(chips: np.ndarray, encoder: IdentityEncoder, jitter: int = 0,
                     jitter_fn: JitterFn = dlib_jitter, batch_size: int = ENCODE_BATCH
                     ) -> np.ndarray:
    """Descriptors ``[n, D]`` of ``chips`` ``[n, s, s, 3]``, as dlib's ``compute_face_descriptor``
    with ``num_jitters=jitter``: the network's descriptor for ``jitter <= 1``, else the mean of
    the descriptors of ``jitter`` copies of each chip made by ``jitter_fn``."""
    chips = np.asarray(chips)
    if jitter <= 1:
        return encoder.encode_numpy(chips, batch_size=batch_size)[1]
    copies = np.concatenate([jitter_fn(chip, jitter) for chip in chips])
    if copies.shape[0] != len(chips) * jitter:
        raise ValueError(f"jitter_fn: expected {jitter} copies per chip; got "
                         f"{copies.shape[0]} for {len(chips)} chips")
    descriptors = encoder.encode_numpy(copies, batch_size=batch_size)[1]
    mean = descriptors.reshape(len(chips), jitter, -1).mean(axis=1, dtype=np.float64)
    return mean.astype(descriptors.dtype)


class DescriptorCache:
    """Descriptors and detector names keyed by image path (relative to ``root``), in one ``.npz``."""

    def __init__(self, file: str | os.PathLike, root: str | os.PathLike):
        self.file, self.root = Path(file), Path(root)
        self.entries: dict[str, tuple[np.ndarray, str]] = {}
        if self.file.is_file():
            with np.load(self.file) as data:
                for key, desc, source in zip(data["keys"], data["descriptors"], data["detector"]):
                    self.entries[str(key)] = (desc, str(source))

    def key(self, path: Path) -> str:
        return os.path.relpath(path, self.root)

    def save(self) -> None:
        keys = sorted(self.entries)
        with atomic_path(self.file) as tmp:
            np.savez(tmp, keys=np.array(keys),
                     descriptors=np.stack([self.entries[k][0] for k in keys]),
                     detector=np.array([self.entries[k][1] for k in keys]))


def encode_images(paths: Iterable[Path], encoder: IdentityEncoder, cache: DescriptorCache,
                  options: ChipOptions = ChipOptions(), log: Callable[[str], None] = print
                  ) -> dict[Path, tuple[np.ndarray, str]]:
    """(descriptor ``[D]``, detector name) of each image, computing and caching missing ones."""
    paths = list(dict.fromkeys(Path(p) for p in paths))
    todo = [p for p in paths if cache.key(p) not in cache.entries]
    start, since_save = time.time(), 0
    for begin in range(0, len(todo), ENCODE_BATCH):
        batch = todo[begin : begin + ENCODE_BATCH]
        chips, sources = zip(*(face_chip(read_rgb(p), options) for p in batch))
        chips = np.stack(chips)
        descriptors = chip_descriptors(chips, encoder, options.jitter)
        if options.flip_average:
            mirrored = np.ascontiguousarray(chips[:, :, ::-1])
            descriptors = (descriptors + chip_descriptors(mirrored, encoder, options.jitter)) / 2.0
        for p, d, source in zip(batch, descriptors, sources):
            cache.entries[cache.key(p)] = (d, source)
        since_save += len(batch)
        if since_save >= CHECKPOINT_EVERY or begin + ENCODE_BATCH >= len(todo):
            cache.save()
            since_save = 0
            done = begin + len(batch)
            log(f"encoded {done}/{len(todo)} images ({done / (time.time() - start):.1f}/s)")
    return {p: cache.entries[cache.key(p)] for p in paths}


@dataclass(frozen=True)
class VerificationResult:
    """Per-fold accuracies and thresholds; which detector found each image's face."""

    fold_accuracies: np.ndarray
    thresholds: np.ndarray
    detector_counts: dict[str, int]
    missed_images: tuple[str, ...]  # images of the centred-crop fallback

    @property
    def mean(self) -> float:
        return float(self.fold_accuracies.mean())

    @property
    def std(self) -> float:
        return float(self.fold_accuracies.std())

    @property
    def num_images(self) -> int:
        return sum(self.detector_counts.values())


def verify_pairs(pairs: Sequence[FacePair], encoder: IdentityEncoder, cache: DescriptorCache,
                 options: ChipOptions = ChipOptions(), log: Callable[[str], None] = print
                 ) -> VerificationResult:
    """Encodes every image of ``pairs`` and runs the k-fold protocol on Euclidean distances."""
    codes = encode_images([p for pair in pairs for p in (pair.path_a, pair.path_b)], encoder,
                          cache, options, log)
    distances = np.array([np.linalg.norm(codes[p.path_a][0] - codes[p.path_b][0]) for p in pairs])
    accuracies, thresholds = kfold_accuracy(
        distances, np.array([p.same for p in pairs]), np.array([p.fold for p in pairs]))
    sources = [source for _, source in codes.values()]
    counts = {name: sources.count(name) for name in sorted(set(sources))}
    missed = tuple(sorted(cache.key(p) for p, (_, source) in codes.items() if source == "center"))
    return VerificationResult(accuracies, thresholds, counts, missed)


def result_record(result: VerificationResult, pairs: Sequence[FacePair], encoder_name: str,
                  options: ChipOptions, pairs_file: str = "lfw_pairs.txt", **extra) -> dict:
    """JSON-ready record of a verification run: the protocol, the per-fold accuracies and
    thresholds, the detector counts and misses; ``extra`` (commit, date, wall time...) is added."""
    same = sum(p.same for p in pairs)
    return {
        "protocol": {
            "name": "LFW View 2",
            "pairs_file": pairs_file,
            "pairs": len(pairs), "same_pairs": same, "different_pairs": len(pairs) - same,
            "folds": len(result.fold_accuracies),
            "rule": "Euclidean distance between descriptors; per fold, the threshold with the best "
                    "accuracy on the other folds is applied to the fold (verification.kfold_accuracy)",
            "encoder": encoder_name,
            "chip_method": options.chip_method, "choose": options.choose,
            "detectors": list(options.detectors), "flip_average": options.flip_average,
            "jitter": options.jitter, "options_tag": options.tag(),
        },
        "accuracy_mean": result.mean,
        "accuracy_std": result.std,
        "fold_accuracies": [float(a) for a in result.fold_accuracies],
        "thresholds": [float(t) for t in result.thresholds],
        "images": result.num_images,
        "detector_counts": dict(result.detector_counts),
        "detector_misses": list(result.missed_images),
        **extra,
    }
