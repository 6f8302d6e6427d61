"""A tiny faces folder for the screening stage (normface.data.screen) and a stand-in descriptor,
shared by its local tests and its Beam pipeline's tests -- never for results.

The descriptor is the scaled pixels: identical images are 0 apart, a lightly noised copy ~0.1,
different faces > 1, so each screening rule is exercised without the real encoder. NumPy only (a
Beam worker that unpickles it imports nothing heavier).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SIZE = 32


def pixel_descriptor(images: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A ``screen.DescriptorFn``: the pixels scaled so different synthetic faces are > 1 apart."""
    del landmarks
    flat = images.reshape(len(images), -1).astype(np.float64) / 255.0
    return (flat * 10.0 / np.sqrt(flat.shape[1])).astype(np.float32)


def write_screening_faces(root: str | Path) -> Path:
    """Writes ``root/aligned`` (test and validation photos and the pool's photos, with a manifest)
    and ``root/averaged``: planted copies of a test photo and of a held-out FairFace photo, a face
    0.38 from that photo (within the 0.45 person threshold, not a duplicate), a near-duplicate in
    the pool, a child. Returns ``root``."""
    from normface.data import align, faceset
    from normface.faces.alignment import AlignmentTemplate
    from normface.testing.synthetic import synthetic_faces

    template = AlignmentTemplate.for_size(SIZE)
    images, marks = synthetic_faces(16, template, seed=5)
    rng = np.random.default_rng(0)
    near_dup = np.clip(images[3].astype(int) + rng.integers(-2, 3, images[3].shape), 0, 255).astype(np.uint8)
    far = float(np.linalg.norm(np.diff(pixel_descriptor(images[8:10], None), axis=0)))
    alpha = 1.0 - 0.38 / far
    near_ff = np.round(alpha * images[8] + (1 - alpha) * images[9]).astype(np.uint8)
    # (person, split, image, labels): the held-out photos, then the training pool.
    rows = [
        ("lfw/Test_Person", "test", images[0], {}),
        ("lfw/Test_Person", "test", images[1], {}),
        ("lfw/Val_Person", "validation", images[2], {}),
        ("fairface/train_1", "train", images[3], {"age_group": "20-29"}),
        ("fairface/train_2", "train", images[4], {"age_group": "30-39"}),
        ("utkface/planted_copy", "train", images[0], {"age": 40}),        # a test photo again
        ("scut/planted_near_dup", "train", near_dup, {}),                  # fairface/train_1, noised
        ("utkface/child", "train", images[5], {"age": 5}),
        ("lfw/Train_Person", "train", images[6], {}),
        ("utkface/adult", "train", images[7], {"age": 33}),
        ("fairface/val_9", "test", images[8], {"age_group": "20-29"}),     # a held-out FairFace photo
        ("utkface/ff_copy", "train", images[8], {"age": 25}),              # ... again in the pool
        ("utkface/ff_near", "train", near_ff, {"age": 25}),                # ... near it, not the same
    ]
    root = Path(root)
    aligned, averaged = faceset.aligned_dir(root), faceset.averaged_dir(root)
    faceset.write_template(aligned, template)
    faceset.write_template(averaged, template)
    manifest = []
    for n, (person, split, image, labels) in enumerate(rows):
        photo = f"photos/{n}.jpg"
        key = f"{person}/{n}"
        faceset.write_face(aligned, faceset.FaceEntry(person, split, marks[n].tolist(), [photo], key=key), image)
        manifest.append({"key": key, "person": person, "photo": photo, "split": split, "status": "aligned",
                         "labels": labels})
        if split == "train" or not faceset.has_face(averaged, split, person):
            faceset.write_face(averaged, faceset.FaceEntry(person, split, marks[n].tolist(), [photo]), image)
    (aligned / align.MANIFEST_FILE).write_text("".join(json.dumps(r) + "\n" for r in manifest))
    return root
