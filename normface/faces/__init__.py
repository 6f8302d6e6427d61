"""Face basics that every later layer builds on: detection and 68 landmarks (``detection``), the
encoder's face chips (``chips``), the alignment template and similarity alignment
(``alignment``), landmark-hull masks (``masks``), per-photo quality measures and the expression model (``quality``), and the
Surrey 3-D face model (``face3d``: head pose, projection). Nothing here knows about training,
serving or the applications."""
