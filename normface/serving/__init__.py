"""Serving: from a photo to its normalized face with a trained model, never importing training.

- :mod:`.export_format`: what an export folder holds (SavedModel, ``.keras``, metadata) and how
  to load it; training writes it.
- :mod:`.packed`: the compact shipped-model format (float16 weights + metadata + card).
- :mod:`.normalizer`: ``FaceNormalizer`` (detect, align, encode, decode) and its ``Result``.
- :mod:`.batch_files`: batches of image files for the CLI (discovery, outputs, contact sheets).
- :mod:`.run_manifest`: what a rerun of ``normface normalize`` in the same output folder skips.
- ``pretrained/``: the shipped model.
"""
