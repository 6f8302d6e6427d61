"""A small numpy software rasterizer: z-buffered triangles with per-vertex attributes.

The avatar (paper Sec. 7.3, Fig. 13) needs three things from a renderer, all at a few hundred
pixels and a few thousand triangles: pictures of the coloured mesh from a couple of angles, a
depth buffer to tell which vertices the camera sees, and a texture image baked in the model's
(u, v) space. One scan-converting loop serves all three; no OpenGL is available on the project's
machines. Attributes and depth are interpolated linearly in screen space (no perspective
correction: the triangles span a few pixels, so the error is invisible).

Screen points are (x, y) pixels with pixel centres at integer coordinates, as everywhere in
normface; depth grows away from the camera.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from normface.faces import face3d

# Light for the Lambert shading of renders, as a direction from the surface toward the light in
# the camera frame (x right, y down, z away): up, a little left and toward the camera.
LIGHT_DIRECTION = (-0.3, -0.5, -1.0)
AMBIENT = 0.35
DIFFUSE = 0.65
# The face's largest extent fills this fraction of a render.
RENDER_FILL = 0.85
DEFAULT_YAWS = (0.0, 30.0)
MOUTH_COLOR = (70.0, 35.0, 35.0)


@dataclasses.dataclass(frozen=True)
class Raster:
    """Output of :func:`rasterize`: ``image [h, w, c]`` interpolated attributes (background where
    no triangle), ``depth [h, w]`` (inf where empty) and ``triangle [h, w]`` (-1 where empty)."""

    image: np.ndarray
    depth: np.ndarray
    triangle: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return self.triangle >= 0


def rasterize(
    points: np.ndarray, depth: np.ndarray, triangles: np.ndarray, attributes: np.ndarray,
    height: int, width: int, background: float | np.ndarray = 0.0, cull_back_faces: bool = False,
) -> Raster:
    """Draws triangles with a z-buffer (nearest wins) and interpolates per-vertex attributes.

    Args:
      points: ``[n, 2]`` (x, y) screen positions of the vertices.
      depth: ``[n]`` depth of the vertices (smaller is nearer).
      triangles: ``[m, 3]`` vertex indices.
      attributes: ``[n, c]`` per-vertex values (colours, ...), interpolated barycentrically.
      height, width: output size.
      background: value of empty pixels (scalar or ``[c]``).
      cull_back_faces: skip triangles that are clockwise on screen, i.e. facing away from a camera
        looking down +z for meshes wound counter-clockwise seen from outside.
    """
    points = np.asarray(points, dtype=np.float64)
    depth = np.asarray(depth, dtype=np.float64)
    triangles = np.asarray(triangles, dtype=np.int64)
    attributes = np.asarray(attributes, dtype=np.float64)
    n = points.shape[0]
    if points.shape != (n, 2) or depth.shape != (n,) or attributes.ndim != 2 or attributes.shape[0] != n:
        raise ValueError(f"rasterize: need points [n, 2], depth [n], attributes [n, c]; got "
                         f"{points.shape}, {depth.shape}, {attributes.shape}")
    bad_index = triangles.size and (triangles.min() < 0 or triangles.max() >= n)
    if triangles.ndim != 2 or triangles.shape[1] != 3 or bad_index:
        raise ValueError(f"rasterize: triangles must be [m, 3] indices into {n} vertices")
    if height < 1 or width < 1:
        raise ValueError(f"rasterize: size must be positive, got {height}x{width}")
    channels = attributes.shape[1]
    image = np.empty((height, width, channels))
    image[:] = background
    zbuf = np.full((height, width), np.inf)
    owner = np.full((height, width), -1, dtype=np.int64)

    tri_xy = points[triangles]  # [m, 3, 2]
    e1, e2 = tri_xy[:, 1] - tri_xy[:, 0], tri_xy[:, 2] - tri_xy[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]  # twice the signed area (y down)
    keep = np.abs(area) > 1e-12
    if cull_back_faces:
        keep &= area < 0  # counter-clockwise in a y-up view is clockwise in y-down pixels
    lo = np.floor(tri_xy.min(1)).astype(np.int64)
    hi = np.ceil(tri_xy.max(1)).astype(np.int64)
    keep &= (hi[:, 0] >= 0) & (hi[:, 1] >= 0) & (lo[:, 0] < width) & (lo[:, 1] < height)
    for t in np.flatnonzero(keep):
        x0, y0 = max(lo[t, 0], 0), max(lo[t, 1], 0)
        x1, y1 = min(hi[t, 0], width - 1), min(hi[t, 1], height - 1)
        xs, ys = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1))
        a, b, c = tri_xy[t]
        # Barycentric coordinates of every pixel centre in the triangle's bounding box.
        w1 = ((xs - a[0]) * (c[1] - a[1]) - (ys - a[1]) * (c[0] - a[0])) / area[t]
        w2 = ((b[0] - a[0]) * (ys - a[1]) - (b[1] - a[1]) * (xs - a[0])) / area[t]
        w0 = 1.0 - w1 - w2
        inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        if not inside.any():
            continue
        i0, i1, i2 = triangles[t]
        z = w0 * depth[i0] + w1 * depth[i1] + w2 * depth[i2]
        rows, cols = ys[inside], xs[inside]
        nearer = z[inside] < zbuf[rows, cols]
        if not nearer.any():
            continue
        rows, cols = rows[nearer], cols[nearer]
        bary = np.stack([w0[inside][nearer], w1[inside][nearer], w2[inside][nearer]], -1)
        zbuf[rows, cols] = z[inside][nearer]
        owner[rows, cols] = t
        image[rows, cols] = bary @ attributes[[i0, i1, i2]]
    return Raster(image=image, depth=zbuf, triangle=owner)


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """``[n, 3]`` unit normals: area-weighted means of the adjacent triangles' normals (outward
    for meshes wound counter-clockwise seen from outside)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    v0, v1, v2 = (vertices[triangles[:, i]] for i in range(3))
    face_normals = np.cross(v1 - v0, v2 - v0)  # length = twice the area: area weighting for free
    normals = np.zeros_like(vertices)
    for i in range(3):
        np.add.at(normals, triangles[:, i], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(length, 1e-12)


def lambert(normals: np.ndarray, light: tuple[float, float, float] = LIGHT_DIRECTION) -> np.ndarray:
    """``[n]`` shading factor ``AMBIENT + DIFFUSE * max(0, n . l)`` for unit ``[n, 3]`` normals."""
    direction = np.asarray(light, dtype=np.float64)
    direction = direction / np.linalg.norm(direction)
    return AMBIENT + DIFFUSE * np.clip(normals @ direction, 0.0, None)


def render_mesh(
    vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray, size: int = 256, yaw: float = 0.0,
    pitch: float = 0.0, background: int = 255, shade: bool = True,
) -> np.ndarray:
    """Renders a vertex-coloured mesh turned by ``yaw``/``pitch`` degrees -> ``[size, size, 3]`` uint8.

    Args:
      vertices: ``[n, 3]`` object-space points in the camera frame's orientation (x right, y
        down, z away; a face looks toward -z), any units.
      triangles: ``[m, 3]`` counter-clockwise seen from outside.
      colors: ``[n, 3]`` RGB in 0-255.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    colors = np.asarray(colors, dtype=np.float64)
    if colors.shape != vertices.shape:
        raise ValueError(f"render_mesh: colors {colors.shape} must match vertices {vertices.shape}")
    rot = face3d.rotation(yaw, pitch, 0.0)
    centred = (vertices - vertices.mean(0)) @ rot.T
    camera = face3d.camera_matrix(size, size)
    extent = float(np.ptp(centred[:, :2], axis=0).max())
    # Distance at which the largest extent fills RENDER_FILL of the frame.
    distance = camera[0, 0] * extent / (RENDER_FILL * size) + float(np.ptp(centred[:, 2]))
    cam_points = centred + np.array([0.0, 0.0, distance])
    screen = face3d.project(cam_points, np.eye(3), np.zeros(3), camera)
    shaded = colors
    if shade:
        shaded = colors * lambert(vertex_normals(cam_points, triangles))[:, None]
    # No culling: the z-buffer hides back faces, and the inside of the lips shows (shaded dark).
    raster = rasterize(screen, cam_points[:, 2], triangles, shaded, size, size, background=float(background))
    image = raster.image
    # The model is a mask with an open mouth: paint the background seen through it as a mouth.
    holes = ndimage.binary_fill_holes(raster.mask) & ~raster.mask
    image[holes] = MOUTH_COLOR
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def render_views(
    vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray, yaws=DEFAULT_YAWS, size: int = 256,
    background: int = 255,
) -> np.ndarray:
    """Renders side by side from each yaw (degrees; the paper's Fig. 13 uses two views) ->
    ``[size, size * len(yaws), 3]`` uint8."""
    views = [render_mesh(vertices, triangles, colors, size=size, yaw=y, background=background) for y in yaws]
    return np.concatenate(views, axis=1)


def bake_texture(texcoords: np.ndarray, triangles: np.ndarray, colors: np.ndarray, size: int = 512) -> np.ndarray:
    """Paints vertex colours into a ``[size, size, 3]`` uint8 texture at the mesh's ``[n, 2]``
    (u, v) coordinates (v grows downwards, as image rows); texels no triangle covers get the
    colour of the nearest covered texel, so bilinear lookups at seams do not pick up black."""
    import cv2

    texcoords = np.asarray(texcoords, dtype=np.float64)
    raster = rasterize(texcoords * (size - 1), np.zeros(len(texcoords)), triangles, colors, size, size)
    image = np.clip(np.rint(raster.image), 0, 255).astype(np.uint8)
    empty = (~raster.mask).astype(np.uint8)
    if empty.all():
        return image
    # Nearest covered texel via the distance transform's label map.
    _, labels = cv2.distanceTransformWithLabels(empty, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    covered = np.flatnonzero(~empty.astype(bool).ravel())
    label_of_covered = labels.ravel()[covered]
    lookup = np.zeros(labels.max() + 1, dtype=np.int64)
    lookup[label_of_covered] = covered
    return image.reshape(-1, 3)[lookup[labels.ravel()]].reshape(image.shape)
