"""Utilities every layer may use: where files live (``paths``), atomic file IO (``io_utils``),
dataclasses to and from JSON (``dataclass_io``), absl flags from dataclasses (``config_flags``), pictures and contact sheets (``pictures``),
provenance (``provenance``), markdown tables (``tables``). Nothing here imports the rest of normface.
"""
