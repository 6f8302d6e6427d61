"""Serving: from a photo to its normalized face with a trained model, never importing training.

- :mod:`.export_format`: what an export folder holds (SavedModel, ``.keras``, metadata) and how
  to load it; training writes it.
- :mod:`.packed`: the compact shipped-model format (float16 weights + metadata + card).
- :mod:`.normalizer`: ``FaceNormalizer`` (detect, align, encode, decode) and its ``Result``.
- :mod:`.batch_files`: batches of image files for the CLI (discovery, outputs, contact sheets).
- :mod:`.run_manifest`: what a rerun of ``normface normalize`` in the same output folder skips.
- :mod:`.http_api`: ``normface serve``, the HTTP API and the page (``static/``) over one loaded model;
  the applications are handed in by the CLI, since they sit above serving.
- :mod:`.batcher`: the bounded queue that batches concurrent requests' faces into one network call.
- ``pretrained/``: the shipped model.
"""
