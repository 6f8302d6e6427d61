"""Face normalization for users: photo in, frontal neutral evenly lit face (+ landmarks) out.

:class:`FaceNormalizer` chains what the model was trained on:

1. detect the faces and their 68 landmarks (``normface.faces.detection.find_faces68``);
2. align each face to the model's template (``normface.faces.alignment``) — the same frame as the
   training faces;
3. encode the aligned face with the frozen encoder (``normface.encoders.face_encoding``: face chip from the
   aligned landmarks, then the network), as the training records were encoded;
4. decode the features into landmarks, texture and the warped output image (the trained model);
5. encode the output too: its encoder distance to the input is the result's ``confidence``
   (lower is better; dlib's same-person threshold is 0.6).

``FaceNormalizer.from_pretrained()`` loads the model shipped inside the package; any export
folder written by ``experiments/export.py`` (or its ``.keras`` file) loads the same way.
The name differs from ``normface.models.Normalizer`` on purpose: that is the trainable network,
this is the whole photo-to-face pipeline around it.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from normface.faces.alignment import AlignmentTemplate, align_image
from normface.utils.pictures import to_uint8

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
DEFAULT_MODEL = "normface128"
BATCH_SIZE = 16


@dataclasses.dataclass
class Result:
    """One normalized face.

    image: ``[S, S, 3]`` uint8 normalized face; landmarks: ``[68, 2]`` (x, y) in it; texture:
    ``[S, S, 3]`` uint8 registered texture (None for models without one); face_box: (left, top,
    right, bottom) in the input photo; features: ``[F]`` encoder features of the input face;
    confidence: encoder distance between output and input (lower = more faithful);
    aligned_input: ``[S, S, 3]`` uint8 input face in the output's frame (for side-by-side views);
    num_faces: faces found in the photo; face_index: this face's rank (0 = the chosen one).
    """

    image: np.ndarray
    landmarks: np.ndarray
    texture: np.ndarray | None
    face_box: tuple[int, int, int, int]
    features: np.ndarray
    confidence: float
    aligned_input: np.ndarray
    num_faces: int
    face_index: int = 0

    def to_json(self) -> dict:
        """JSON-ready summary (landmarks as (x, y) pixel lists)."""
        return {
            "face_index": self.face_index,
            "num_faces": self.num_faces,
            "face_box": [int(v) for v in self.face_box],
            "confidence": round(float(self.confidence), 4),
            "landmarks": np.round(self.landmarks, 2).tolist(),
        }


def resolve_model_path(path: str | os.PathLike | None) -> Path:
    """An export folder (or ``.keras`` file); None = the model shipped in the package."""
    if path is None:
        path = PRETRAINED_DIR / DEFAULT_MODEL
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    return path


def model_fingerprint(path: str | os.PathLike | None, backend: str | None = None) -> str:
    """A digest of the files that define a model (its metadata and weights), read without
    loading it: equal for the same model wherever it lies, different after any change.

    ``backend``: what runs the networks (``"litert"`` or ``"tensorflow"``, as
    :meth:`FaceNormalizer.from_pretrained` resolves it). Their faces differ by up to a grey level,
    so the fingerprint (the run manifest's key) differs between them too: a run resumed on the other
    backend redoes its inputs instead of mixing both backends' faces in one folder."""
    import hashlib

    from normface.serving import export_format, packed, run_manifest

    path = resolve_model_path(path)
    if packed.is_packed(path):
        files = [path / packed.METADATA_FILE, path / packed.WEIGHTS_FILE]
    else:
        export_dir = path if path.is_dir() else path.parent
        files = [export_dir / export_format.METADATA_FILE,
                 path if path.suffix == ".keras" else path / export_format.KERAS_FILE]
    digest = hashlib.sha256()
    if backend is not None:
        digest.update(f"backend\0{backend}\0".encode())
    for f in files:
        digest.update(f.name.encode() + b"\0" + (run_manifest.file_sha256(f) if f.is_file() else "-").encode())
    return digest.hexdigest()


class FaceNormalizer:
    """The photo-to-normalized-face pipeline around a trained model."""

    def __init__(self, model, metadata, encoder, choose: str = "largest", backend=None):
        self.metadata = metadata
        self.choose = choose
        template = metadata.alignment_template
        if template is None:
            raise ValueError("the model's metadata has no alignment template: re-export it")
        self.template: AlignmentTemplate = template
        if template.size != metadata.output_size:
            raise ValueError(f"template size {template.size} != model output size {metadata.output_size}")
        # The networks' runner: a LiteRTBackend (normface.serving.litert_backend, no TensorFlow),
        # or None for TensorFlow (the function below). With LiteRT, ``model`` and ``encoder`` are
        # the TensorFlow ones, loaded on first use (__getattr__).
        self.backend = backend
        if backend is not None:
            return
        import tensorflow as tf

        self.model = model
        self.encoder = encoder
        from normface.encoders.face_encoding import face_chips

        @tf.function(reduce_retracing=True)
        def run(aligned, landmarks):
            chips = face_chips(encoder, aligned, landmarks)
            enc = encoder.encode(chips)
            out = model(enc.features, training=False)
            image = tf.clip_by_value(out["image"], 0.0, 1.0)
            out_desc = encoder.encode(face_chips(encoder, image * 255.0, out["landmarks"])).descriptor
            distance = tf.norm(out_desc - enc.descriptor, axis=-1)
            texture = out.get("texture", tf.zeros_like(image))
            return enc.features, image, out["landmarks"], texture, distance, enc.descriptor, out_desc

        self._run = run

    def __getattr__(self, name: str):
        # A LiteRT normalizer's TensorFlow model and encoder, for callers that use them directly.
        if name in ("model", "encoder") and self.__dict__.get("backend") is not None:
            from normface.encoders import get_encoder
            from normface.serving import packed

            self.__dict__["model"], _ = packed.load(self.backend.packed_dir)
            self.__dict__["encoder"] = get_encoder(self.metadata.encoder_id or "dlib")
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, choose: str = "largest",
                        backend: str = "auto", threads: int | None = None) -> "FaceNormalizer":
        """Loads a packed model (:mod:`normface.serving.packed`; default: the one shipped in the
        package), an export folder or its ``.keras`` file.

        ``backend``: ``"auto"`` runs a packed model with LiteRT files on LiteRT (no TensorFlow;
        :mod:`normface.serving.litert_backend`) and anything else on TensorFlow; ``"litert"``
        insists (ValueError naming the model when it cannot); ``"tensorflow"`` always uses
        TensorFlow (a GPU, or the training code's exact graph). ``threads``: each LiteRT
        interpreter's threads (default ``$NORMFACE_LITERT_THREADS``, else 1: a batch run keeps the
        other core for detection; a server whose networks run one batch at a time wants the cores).

        Raises FileNotFoundError for a missing model or file, ``packed.ModelFileError`` (a
        ValueError) naming the file that is corrupt, partial or unreadable."""
        from normface.serving import litert_backend, packed

        path = resolve_model_path(path)
        if litert_backend.choose_backend(path, backend) == "litert":
            runner = litert_backend.LiteRTBackend(path, packed.read_metadata(path),
                                                  threads or litert_backend.DEFAULT_THREADS)
            return cls(None, runner.metadata, None, choose=choose, backend=runner)
        from normface.encoders import get_encoder
        from normface.serving import export_format

        if packed.is_packed(path):
            model, metadata = packed.load(path)
            return cls(model, metadata, get_encoder(metadata.encoder_id or "dlib"), choose=choose)
        export_dir = path if path.is_dir() else path.parent
        if (path / packed.METADATA_FILE).is_file() and not (path / export_format.KERAS_FILE).exists():
            raise FileNotFoundError(f"{path}: no {packed.WEIGHTS_FILE} beside its {packed.METADATA_FILE} (a packed "
                                    f"model needs both)")
        meta_file = export_dir / export_format.METADATA_FILE
        if not meta_file.is_file():
            raise FileNotFoundError(f"{export_dir}: no {export_format.METADATA_FILE} (not a normface export)")
        try:
            metadata = export_format.ExportMetadata.from_json(meta_file.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise packed.ModelFileError(f"{meta_file}: {err}") from err
        keras_file = path if path.suffix == ".keras" else path / export_format.KERAS_FILE
        if not keras_file.is_file():
            raise FileNotFoundError(f"{export_dir}: no {export_format.KERAS_FILE} (not a normface export)")
        try:
            model = export_format.load_keras(path)
        except Exception as err:  # noqa: BLE001 -- Keras raises many types for a damaged file
            raise packed.ModelFileError(f"{keras_file}: cannot be loaded, corrupt or partial? "
                                        f"({type(err).__name__}: {err})") from err
        encoder = get_encoder(metadata.encoder_id or "dlib")
        return cls(model, metadata, encoder, choose=choose)

    def choosing(self, choose: str) -> "FaceNormalizer":
        """The same normalizer (sharing the model and its compiled function) picking faces by
        ``choose`` ("largest" or "center", as :func:`normface.faces.detection.find_faces68`)."""
        other = copy.copy(self)
        other.choose = choose
        return other

    @property
    def output_size(self) -> int:
        return self.template.size

    def align(self, image: np.ndarray, all_faces: bool = False):
        """Detected faces aligned to the model's frame: list of (aligned, landmarks, detection).

        ``image``: uint8 (or integer) 0-255, or float: in [0, 1] (how Keras, scikit-image and
        matplotlib hold images; scaled to 0-255 by ``to_uint8``) or else 0-255."""
        from normface.faces.detection import as_rgb_uint8, find_faces68

        image = np.asarray(image)
        if (np.issubdtype(image.dtype, np.floating) and image.size and np.isfinite(image).all()
                and image.min() >= 0.0 and image.max() <= 1.0):
            image = to_uint8(image)
        faces = find_faces68(image, choose=self.choose)
        if not all_faces:
            faces = faces[:1]
        out = []
        for det in faces:
            aligned, aligned_lm, _ = align_image(as_rgb_uint8(image), det.landmarks, self.template)
            out.append((aligned, aligned_lm, det))
        return out

    def normalize_aligned(self, aligned: np.ndarray, landmarks: np.ndarray) -> dict[str, np.ndarray]:
        """Runs encoder + decoder on already-aligned faces ``[b, S, S, 3]`` uint8 with landmarks
        ``[b, 68, 2]``; returns numpy arrays (features, image, landmarks, texture, confidence,
        input_descriptor, output_descriptor)."""
        aligned = np.asarray(aligned)
        if aligned.ndim != 4 or aligned.shape[1:3] != (self.output_size, self.output_size):
            raise ValueError(f"aligned faces must be [b, {self.output_size}, {self.output_size}, 3], got {aligned.shape}")
        if len(aligned) == 1:
            # A batch of one runs other CPU kernels than larger ones, and its face differs by a grey
            # level; every batch of two or more gives a face the same bytes. Run it as two, so a
            # face's outputs never depend on the batch it came in (a resumed run equals a clean one).
            out = self.normalize_aligned(np.concatenate([aligned] * 2), np.concatenate([np.asarray(landmarks)] * 2))
            return {name: value[:1] for name, value in out.items()}
        if self.backend is not None:
            return self.backend.run(aligned, landmarks)
        import tensorflow as tf

        feats, image, lms, texture, dist, in_desc, out_desc = self._run(
            tf.constant(aligned, tf.float32), tf.constant(landmarks, tf.float32))
        return {"features": feats.numpy(), "image": to_uint8(image.numpy()), "landmarks": lms.numpy(),
                "texture": to_uint8(texture.numpy()), "confidence": dist.numpy(),
                "input_descriptor": in_desc.numpy(), "output_descriptor": out_desc.numpy()}

    def normalize(self, image: np.ndarray, all_faces: bool = False) -> list[Result]:
        """Normalizes the largest (or every) face of an ``[h, w, 3]`` (or greyscale) photo."""
        return self.normalize_many([image], all_faces=all_faces)[0]

    def normalize_many(self, images: Sequence[np.ndarray], all_faces: bool = False,
                       batch_size: int = BATCH_SIZE, errors: dict[int, str] | None = None) -> list[list[Result]]:
        """Normalizes photos, batching their faces through the networks.

        With ``errors`` (a dict), a photo that cannot be prepared (unusable image, degenerate
        landmarks) gets no results and ``errors[index]`` says why; without it, the error is raised.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        faces = []
        for i, image in enumerate(images):
            try:
                faces += [(i, k, item) for k, item in enumerate(self.align(image, all_faces))]
            except ValueError as err:
                if errors is None:
                    raise
                errors[i] = str(err)
        results: list[list[Result]] = [[] for _ in images]
        for start in range(0, len(faces), batch_size):
            chunk = faces[start:start + batch_size]
            out = self.normalize_aligned(np.stack([c[2][0] for c in chunk]), np.stack([c[2][1] for c in chunk]))
            for (i, _, _), res in zip(chunk, self.to_results([c[2] for c in chunk], out, [c[1] for c in chunk])):
                results[i].append(res)
        return results

    def to_results(self, faces: Sequence[tuple], out: dict[str, np.ndarray],
                   face_indices: Sequence[int] | None = None) -> list[Result]:
        """The :class:`Result` of each of ``faces`` (:meth:`align`'s ``(aligned, landmarks,
        detection)``) from :meth:`normalize_aligned`'s outputs ``out`` for them, in order (the
        HTTP server runs the networks through its batch queue, then builds the results here)."""
        has_texture = not self.metadata.model_config.get("plain_cnn", False)
        indices = range(len(faces)) if face_indices is None else face_indices
        return [Result(image=out["image"][j], landmarks=out["landmarks"][j],
                       texture=out["texture"][j] if has_texture else None, face_box=tuple(det.box),
                       features=out["features"][j], confidence=float(out["confidence"][j]),
                       aligned_input=aligned, num_faces=det.num_faces, face_index=k)
                for j, ((aligned, _, det), k) in enumerate(zip(faces, indices))]

    def normalize_merged(self, images: Sequence[np.ndarray], names: Sequence[str] | None = None,
                         weighting: str = "mean", strict: bool = False, errors: dict[int, str] | None = None):
        """One face from several photos of one person (their features combined, decoded once):
        ``(MergedFace, single-photo results)``; see :func:`normface.serving.merge.normalize_merged`."""
        from normface.serving import merge

        return merge.normalize_merged(self, images, names=names, weighting=weighting, strict=strict, errors=errors)
