"""The studio sets (London, Canada) as labelled expression examples.

The London set has each person neutral (``NNN_03.jpg``) and smiling (``NNN_08.jpg``); the Canada
set is neutral only. Both give the expression filter its training examples and its honest test
(held-out London people).
"""

from __future__ import annotations

from pathlib import Path

from normface.data import splits
from normface.utils import io_utils
from normface.faces.alignment import AlignmentTemplate, align_image

# Expression features do not depend on the crop size; 128 keeps the alignment cheap.
FEATURE_TEMPLATE = AlignmentTemplate.for_size(128)


def studio_photos(data_root: str | Path) -> list[tuple[str, Path, bool]]:
    """``(person id, path, smiling)`` of every studio photo (:func:`normface.data.splits.studio_photos`)."""
    return [(p.person, p.path, p.smiling) for p in splits.studio_photos(data_root)]


def expression_examples(data_root: str | Path, people: set[str]) -> tuple[list[dict], list[bool], dict]:
    """Expression features and smile labels of the studio photos of ``people``."""
    from normface.faces.detection import find_faces68
    from normface.faces import quality

    feats, labels = [], []
    for person, path, smiling in studio_photos(data_root):
        if person not in people:
            continue
        image = io_utils.read_rgb(path)
        faces = find_faces68(image)
        if not faces:
            raise ValueError(f"{path}: no face found in a studio photo")
        _, aligned_lm, _ = align_image(image, faces[0].landmarks, FEATURE_TEMPLATE)
        feats.append(quality.expression_features(aligned_lm))
        labels.append(smiling)
    counts = {"neutral": labels.count(False), "smiling": labels.count(True)}
    return feats, labels, counts
