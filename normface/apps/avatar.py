"""The 3-D avatar of a face (paper Sec. 7.3, Appendix B): fit the Surrey shape model to 68
landmarks, then colour its vertices from the image.

Shape (App. B.2). The landmarks are taken as the perspective projections of model vertices:
``ibug_to_sfm.txt`` gives a fixed vertex for 50 of the 68 points (the paper derived its own such
table by rendering the mean face; this file is that table). The 16 jaw points slide along the
face's outline, so each is matched to the contour vertex (``sfm_model_contours.json``) whose
projection is nearest, re-chosen every few iterations as the fit moves. Adam (TensorFlow) then
minimises the mean squared landmark error, measured in inter-ocular distances, plus an L2 pull
of the rescaled-PCA shape coefficients toward the mean face (0), over the coefficients, a
rotation, a uniform scale and a 2-D translation. As in the paper the camera is fixed (focal
length ``face3d.FOCAL_LENGTH_WIDTHS`` image widths) and the model is moved in front of it; the
depth is fixed at the distance the eye spacing implies, because under perspective a 3-D
translation and a scale are exactly interchangeable ((s, t) and (c s, c t) project alike).

Colour (App. B.3, replaced). The image is sampled at every vertex's projection. Each sample gets
a confidence: the cosine between the vertex normal and the direction to the camera, ramped to 0
at grazing angles, 0 for back-facing and hidden (z-buffer) vertices, times a mask that is 1 inside
the landmarks' convex hull and decays to 0 a little outside it (the paper's mask, :func:`normface.faces.masks.hull_mask`;
a margin of 0 leaves only the hull's anti-aliased edge). The paper then projects the colours onto the model's colour
basis and blends; the Surrey model has no colour basis, so instead a low-confidence vertex takes
the colour of its mirror vertex (``sfm_reference_symmetry.txt``) when that one is confident, and
what neither side sees is filled by diffusion from mesh neighbours (a harmonic fill, solved by
Jacobi iterations). The final colour blends the sample and the filled colour by confidence, as
the paper's blend by foreshortening.

Frames: arrays are in the camera frame of ``face3d`` (x right, y down, z away, mm); files are
written in the model's own frame (y up, z toward the viewer), which mesh viewers expect.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from normface.apps import mesh_io, render
from normface.utils import io_utils, pictures
from normface.faces import alignment
from normface.faces import face3d
from normface.faces.masks import hull_mask

NUM_LANDMARKS = 68


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Settings of :func:`fit_shape`.

    steps: Adam iterations in all; the first ``pose_steps`` move only rotation, scale and
      translation (the shape stays the mean) so the shape does not absorb pose errors.
    learning_rate: Adam's step, cosine-decayed to ``learning_rate * final_lr_fraction``.
    regularization: weight of ``sum(coefficients ** 2)`` against the mean squared landmark error
      in inter-ocular distances (the paper's lambda; chosen on synthetic and dlib landmarks).
    num_coefficients: how many principal components to fit (the model has 63).
    reselect_every: iterations between re-choosing the jaw points' contour vertices.
    """

    steps: int = 400
    pose_steps: int = 60
    learning_rate: float = 0.02
    final_lr_fraction: float = 0.02
    regularization: float = 1e-5
    num_coefficients: int = 63
    reselect_every: int = 10


@dataclasses.dataclass(frozen=True)
class ColorConfig:
    """Settings of :func:`vertex_colors`.

    grazing_cos / full_cos: confidence ramps from 0 at this cosine between normal and view
      direction (about 78 degrees) to 1 at ``full_cos`` (about 45 degrees).
    hull_margin: the hull mask decays from 1 at the landmarks' convex hull to 0 this many
      inter-ocular distances outside it (0: zero outside the hull).
    depth_tolerance: a vertex is visible when within this fraction of its depth of the z-buffer.
    fill_iterations: Jacobi iterations of the neighbour fill.
    """

    grazing_cos: float = 0.2
    full_cos: float = 0.7
    hull_margin: float = 0.25
    depth_tolerance: float = 0.01
    fill_iterations: int = 400


@dataclasses.dataclass(frozen=True)
class ShapeFit:
    """Result of :func:`fit_shape`.

    coefficients: ``[k]`` rescaled-PCA shape coefficients (standard-normal prior).
    rotation ``[3, 3]``, scale, translation ``[3]``: place the shape in front of the camera as
      ``scale * vertices @ rotation.T + translation``.
    camera: ``[3, 3]`` intrinsics; image_size: (width, height).
    vertices: ``[n, 3]`` the fitted shape, object space (camera-frame axes, mm, unposed).
    camera_vertices: ``[n, 3]`` posed. projected: ``[n, 2]`` (x, y) pixels.
    landmark_indices: ``[l]`` the 68-point indices used; landmark_vertices: ``[l]`` their vertices
      at the end of the fit (jaw points: the chosen contour vertices).
    errors: ``[l]`` final landmark reprojection errors (px). loss: per-iteration loss.
    """

    coefficients: np.ndarray
    rotation: np.ndarray
    scale: float
    translation: np.ndarray
    camera: np.ndarray
    image_size: tuple[int, int]
    vertices: np.ndarray
    camera_vertices: np.ndarray
    projected: np.ndarray
    landmark_indices: np.ndarray
    landmark_vertices: np.ndarray
    errors: np.ndarray
    loss: np.ndarray

    @property
    def mean_error(self) -> float:
        """Mean landmark reprojection error in pixels."""
        return float(self.errors.mean())

    def angles(self) -> tuple[float, float, float]:
        """(yaw, pitch, roll) in degrees (``face3d.rotation``'s convention)."""
        return face3d.angles(self.rotation)


def _check_landmarks(landmarks: np.ndarray, name: str = "landmarks") -> np.ndarray:
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (NUM_LANDMARKS, 2) or not np.all(np.isfinite(landmarks)):
        raise ValueError(f"{name} must be [68, 2] finite (x, y) points, got shape {landmarks.shape}")
    return landmarks


def _check_size(image_size) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in image_size)
    except (TypeError, ValueError) as err:
        raise ValueError(f"image_size must be (width, height), got {image_size!r}") from err
    if width < 1 or height < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return width, height


def interocular(landmarks: np.ndarray) -> float:
    """Distance between the eye centres of ``[68, 2]`` landmarks (px)."""
    eyes = alignment.eye_centers(landmarks)
    return float(np.linalg.norm(eyes[1] - eyes[0]))


def _rodrigues(omega: tf.Tensor) -> tf.Tensor:
    """``[3]`` axis-angle -> ``[3, 3]`` rotation (smooth at 0)."""
    with tf.name_scope("rodrigues"):
        theta = tf.sqrt(tf.reduce_sum(omega ** 2) + 1e-20)
        k = omega / theta
        zero = tf.zeros((), omega.dtype)
        skew = tf.reshape(tf.stack([zero, -k[2], k[1], k[2], zero, -k[0], -k[1], k[0], zero]), (3, 3))
        eye = tf.eye(3, dtype=omega.dtype)
        return eye + tf.sin(theta) * skew + (1.0 - tf.cos(theta)) * (skew @ skew)


def _correspondences(model: face3d.ShapeModel) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(used landmark indices [l], fixed vertex per landmark [l] (-1 for jaw points), contour
    candidates per jaw landmark in the order of the -1 entries)."""
    used, fixed, candidates = [], [], []
    jaw = {i: model.right_contour for i in face3d.RIGHT_JAW} | {i: model.left_contour for i in face3d.LEFT_JAW}
    for i in range(NUM_LANDMARKS):
        if i in model.landmarks:
            used.append(i)
            fixed.append(model.landmarks[i])
        elif i in jaw:
            used.append(i)
            fixed.append(-1)
            candidates.append(jaw[i])
    return np.array(used), np.array(fixed), candidates


def fit_shape(
    landmarks68: np.ndarray, image_size: tuple[int, int], config: FitConfig = FitConfig(),
    data_root: str | Path | None = None,
) -> ShapeFit:
    """Fits the Surrey shape and pose to ``[68, 2]`` (x, y) landmarks of an image of
    ``image_size`` = (width, height) pixels (paper App. B.2; see the module docstring)."""
    landmarks = _check_landmarks(landmarks68, "landmarks68")
    width, height = _check_size(image_size)
    model = face3d.shape_model(data_root)
    k = int(config.num_coefficients)
    if not 0 <= k <= model.num_coefficients:
        raise ValueError(f"num_coefficients must be in 0..{model.num_coefficients}, got {k}")
    if config.steps < 1 or config.reselect_every < 1:
        raise ValueError("FitConfig.steps and reselect_every must be >= 1")
    camera = face3d.camera_matrix(width, height)
    iod = interocular(landmarks)
    if iod < 1e-3:
        raise ValueError("landmarks68: the eye centres coincide")
    used, fixed, candidates = _correspondences(model)
    # Only the vertices that can match a landmark take part in the optimisation.
    pool = np.unique(np.concatenate([fixed[fixed >= 0]] + candidates))
    where = {v: i for i, v in enumerate(pool)}
    jaw_slots = np.flatnonzero(fixed < 0)
    cand_pos = [np.array([where[v] for v in c]) for c in candidates]
    corr = np.array([where[v] if v >= 0 else 0 for v in fixed])

    rot0, t0 = face3d.pose(landmarks, width, height, data_root)
    depth = float(t0[2])
    target = tf.constant(landmarks[used])
    mean = tf.constant(model.mean[pool])
    basis = tf.constant(model.basis[pool][:, :, :k])
    cam = tf.constant(camera)
    rot0_t = tf.constant(rot0)
    coeffs = tf.Variable(tf.zeros(k, tf.float64), name="coefficients")
    omega = tf.Variable(tf.zeros(3, tf.float64), name="rotation_delta")
    log_scale = tf.Variable(tf.zeros((), tf.float64), name="log_scale")
    # Translation in units of the depth, so one Adam step moves every parameter a like amount.
    shift = tf.Variable(tf.constant(t0[:2] / depth), name="shift")
    corr_var = tf.Variable(corr, dtype=tf.int64, name="correspondences")

    def project_pool():
        with tf.name_scope("project"):
            shape = mean + tf.einsum("vck,k->vc", basis, coeffs)
            rot = _rodrigues(omega) @ rot0_t
            trans = tf.concat([shift * depth, tf.constant([depth], tf.float64)], 0)
            posed = tf.exp(log_scale) * shape @ tf.transpose(rot) + trans
            uvw = posed @ tf.transpose(cam)
            return uvw[:, :2] / uvw[:, 2:3]

    def loss_fn():
        with tf.name_scope("landmark_loss"):
            residual = (tf.gather(project_pool(), corr_var) - target) / iod
            data = tf.reduce_mean(tf.reduce_sum(residual ** 2, -1))
            return data + config.regularization * tf.reduce_sum(coeffs ** 2)

    schedule = tf.keras.optimizers.schedules.CosineDecay(
        config.learning_rate, config.steps, alpha=config.final_lr_fraction)
    optimizer = tf.keras.optimizers.Adam(schedule)
    variables = [omega, log_scale, shift, coeffs]
    # 0 during the pose-only phase: one optimizer over all variables, the shape's gradient gated.
    shape_gate = tf.Variable(0.0, dtype=tf.float64, name="shape_gate")

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn()
        grads = tape.gradient(loss, variables)
        grads[-1] = grads[-1] * shape_gate
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    def reselect():
        xy = project_pool().numpy()
        new = corr_var.numpy()
        for slot, pos in zip(jaw_slots, cand_pos):
            target_xy = landmarks[used[slot]]
            new[slot] = pos[np.argmin(np.sum((xy[pos] - target_xy) ** 2, -1))]
        corr_var.assign(new)

    history = []
    for i in range(config.steps):
        if i % config.reselect_every == 0:
            reselect()
        if i == config.pose_steps:
            shape_gate.assign(1.0)
        history.append(float(step()))
    reselect()

    rot = (_rodrigues(omega) @ rot0_t).numpy()
    scale = float(np.exp(log_scale.numpy()))
    translation = np.array([*(shift.numpy() * depth), depth])
    vertices = model.shape(coeffs.numpy())
    camera_vertices = scale * vertices @ rot.T + translation
    projected = face3d.project(camera_vertices, np.eye(3), np.zeros(3), camera)
    landmark_vertices = pool[corr_var.numpy()]
    errors = np.linalg.norm(projected[landmark_vertices] - landmarks[used], axis=-1)
    return ShapeFit(
        coefficients=coeffs.numpy(), rotation=rot, scale=scale, translation=translation, camera=camera,
        image_size=(width, height), vertices=vertices, camera_vertices=camera_vertices, projected=projected,
        landmark_indices=used, landmark_vertices=landmark_vertices, errors=errors, loss=np.array(history),
    )


# --- colour -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VertexColors:
    """Result of :func:`vertex_colors`: ``colors [n, 3]`` final RGB (0-255), ``sampled [n, 3]``
    the image at each vertex, ``confidence [n]`` in [0, 1], ``visible [n]`` bool."""

    colors: np.ndarray
    sampled: np.ndarray
    confidence: np.ndarray
    visible: np.ndarray


def _sample(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear samples ``[n, c]`` of ``image`` at ``[n, 2]`` (x, y) (border repeated)."""
    import cv2

    maps = np.asarray(xy, dtype=np.float32).reshape(-1, 1, 2)
    out = cv2.remap(np.asarray(image, dtype=np.float32), maps, None, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(len(xy), -1).astype(np.float64)


def neighbour_matrix(triangles: np.ndarray, num_vertices: int):
    """``[n, n]`` sparse row-normalised adjacency of the mesh (each row averages a vertex's
    neighbours; an isolated vertex's row is empty)."""
    from scipy import sparse

    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    adjacency = sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])),
                                  shape=(num_vertices, num_vertices)).tocsr()
    adjacency.data[:] = 1.0  # an edge shared by two triangles counts once
    degree = np.asarray(adjacency.sum(1)).ravel()
    return sparse.diags(1.0 / np.maximum(degree, 1.0)) @ adjacency


def fill_colors(
    colors: np.ndarray, confidence: np.ndarray, symmetry: np.ndarray, triangles: np.ndarray,
    iterations: int = ColorConfig.fill_iterations,
) -> np.ndarray:
    """Repairs low-confidence vertex colours (our replacement for App. B.3's colour basis).

    Args:
      colors: ``[n, c]`` sampled colours. confidence: ``[n]`` in [0, 1].
      symmetry: ``[n]`` mirror vertex of each vertex. triangles: ``[m, 3]``.

    Returns ``[n, c]``: first each vertex's own colour is combined with its mirror's,
    ``a = w + (1 - w) w_mirror`` and ``d = (w c + (1 - w) w_mirror c_mirror) / a``, so its own
    sample dominates when trusted; then ``x <- a d + (1 - a) mean_neighbours(x)`` is iterated,
    which keeps trusted colours and diffuses them into what neither side sees.
    """
    colors = np.asarray(colors, dtype=np.float64)
    w = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)
    n = colors.shape[0]
    if w.shape != (n,) or np.asarray(symmetry).shape != (n,):
        raise ValueError(f"fill_colors: confidence and symmetry must be [{n}], got "
                         f"{w.shape} and {np.asarray(symmetry).shape}")
    w_mirror = w[symmetry]
    a = w + (1.0 - w) * w_mirror
    d = (w[:, None] * colors + ((1.0 - w) * w_mirror)[:, None] * colors[symmetry]) / np.maximum(a, 1e-12)[:, None]
    if a.max() <= 0:
        return np.full_like(colors, colors.mean(0))
    # Unknown vertices start from the confidence-weighted mean colour: a sensible value where the
    # diffusion does not reach within the iteration budget.
    x = np.where(a[:, None] > 0, d, (a[:, None] * d).sum(0) / a.sum())
    neighbours = neighbour_matrix(triangles, n)
    a_col = a[:, None]
    for _ in range(int(iterations)):
        x = a_col * d + (1.0 - a_col) * (neighbours @ x)
    return x


def vertex_colors(
    image: np.ndarray, fit: ShapeFit, landmarks68: np.ndarray, config: ColorConfig = ColorConfig(),
    data_root: str | Path | None = None,
) -> VertexColors:
    """Colours the fitted mesh from ``image`` ``[h, w, 3]`` (the synthesized face, or any photo
    the fit was made on); see the module docstring."""
    landmarks = _check_landmarks(landmarks68, "landmarks68")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be [h, w, 3] RGB, got shape {image.shape}")
    height, width = image.shape[:2]
    if (width, height) != tuple(fit.image_size):
        raise ValueError(f"image is {width}x{height} but the fit was made for {fit.image_size[0]}x{fit.image_size[1]}")
    model = face3d.shape_model(data_root)
    points = fit.camera_vertices
    normals = render.vertex_normals(points, model.triangles)
    to_camera = -points / np.linalg.norm(points, axis=1, keepdims=True)
    cosine = np.sum(normals * to_camera, axis=1)
    angle_conf = np.clip((cosine - config.grazing_cos) / (config.full_cos - config.grazing_cos), 0.0, 1.0)
    # Visibility: a vertex hidden behind another part of the face (the nose at a turn) is not
    # what the image shows at its projection.
    raster = render.rasterize(fit.projected, points[:, 2], model.triangles, np.zeros((len(points), 1)),
                              height, width, cull_back_faces=True)
    xy = np.round(fit.projected).astype(np.int64)
    on_image = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    zbuf = np.full(len(points), -np.inf)
    zbuf[on_image] = raster.depth[xy[on_image, 1], xy[on_image, 0]]
    visible = on_image & (cosine > 0) & (points[:, 2] <= zbuf * (1.0 + config.depth_tolerance))
    mask = hull_mask(landmarks, (height, width), margin=config.hull_margin * interocular(landmarks))
    confidence = angle_conf * _sample(mask[..., None], fit.projected)[:, 0] * visible
    sampled = _sample(image, fit.projected)
    filled = fill_colors(sampled, confidence, model.symmetry, model.triangles, config.fill_iterations)
    return VertexColors(colors=np.clip(filled, 0, 255), sampled=sampled, confidence=confidence, visible=visible)
VIEWS_SUFFIX = "_views.png"


# --- avatar ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AvatarResult:
    """fit, colors: from :mod:`normface.apps.avatar`; files: written paths (mesh first, then MTL and
    texture for OBJ, then the views PNG); error_px / error_iod: mean landmark reprojection error
    in pixels and in inter-ocular distances."""

    fit: ShapeFit
    colors: VertexColors
    files: list[Path]
    error_px: float
    error_iod: float


@dataclasses.dataclass(frozen=True)
class AvatarMesh:
    """The avatar in memory (:func:`build_avatar`): fit and colors as above; mesh: the coloured
    mesh in the model's frame (y up, z toward the viewer, mm) with the model's texcoords;
    error_px / error_iod: mean landmark reprojection error in pixels and inter-ocular distances."""

    fit: ShapeFit
    colors: VertexColors
    mesh: mesh_io.Mesh
    error_px: float
    error_iod: float


def build_avatar(
    image: np.ndarray, landmarks68: np.ndarray, fit_config: FitConfig = FitConfig(),
    color_config: ColorConfig = ColorConfig(), data_root: str | Path | None = None,
) -> AvatarMesh:
    """Fits and colours the avatar of the face in ``image`` ``[h, w, 3]`` uint8 with ``[68, 2]``
    (x, y) landmarks, writing nothing (the HTTP API hands it out as ``.glb``/OBJ bytes).
    Raises FileNotFoundError naming the folder when the Surrey model is absent."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be [h, w, 3] RGB, got shape {image.shape}")
    landmarks = np.asarray(landmarks68, dtype=np.float64)
    height, width = image.shape[:2]
    fit = fit_shape(landmarks, (width, height), fit_config, data_root)
    colors = vertex_colors(image, fit, landmarks, color_config, data_root)
    model = face3d.shape_model(data_root)
    mesh = mesh_io.Mesh(vertices=fit.vertices * face3d.MODEL_TO_CAMERA, triangles=model.triangles,
                        colors=colors.colors, texcoords=model.texcoords)
    return AvatarMesh(fit=fit, colors=colors, mesh=mesh, error_px=fit.mean_error,
                      error_iod=fit.mean_error / interocular(landmarks))


AVATAR_FORMATS = ("glb", "obj")


def avatar_bytes(image: np.ndarray, landmarks68: np.ndarray, fmt: str = "glb",
                 data_root: str | Path | None = None) -> bytes:
    """The avatar as one file's bytes, written nowhere: binary glTF (``glb``, vertex colours) or
    OBJ (``obj``, vertex colours inline, no material). For the HTTP API."""
    if fmt not in AVATAR_FORMATS:
        raise ValueError(f"avatar format must be one of {AVATAR_FORMATS}, got {fmt!r}")
    mesh = build_avatar(image, landmarks68, data_root=data_root).mesh
    return mesh_io.glb_bytes(mesh) if fmt == "glb" else mesh_io.obj_text(mesh).encode()


surrey_model_missing = face3d.surrey_model_missing  # without TensorFlow there: the server asks at start


def make_avatar(
    image: np.ndarray, landmarks68: np.ndarray, out_path: str | Path,
    fit_config: FitConfig = FitConfig(), color_config: ColorConfig = ColorConfig(),
    render_size: int = 256, texture_size: int = 512, data_root: str | Path | None = None,
) -> AvatarResult:
    """Fits, colours and writes the avatar of the face in ``image`` ``[h, w, 3]`` uint8 with
    ``[68, 2]`` (x, y) landmarks. ``out_path`` ends in .obj or .ply; the two-view picture goes
    to ``<stem>_views.png`` beside it: the input with its landmarks (green) and the fitted
    model's (red), then renders at yaw 0 and 30 degrees."""
    import cv2

    out_path = Path(out_path)
    if out_path.suffix.lower() not in (".obj", ".ply"):
        raise ValueError(f"{out_path}: avatar output must end in .obj or .ply")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be [h, w, 3] RGB, got shape {image.shape}")
    built = build_avatar(image, landmarks68, fit_config, color_config, data_root)
    fit, colors, mesh, landmarks = built.fit, built.colors, built.mesh, np.asarray(landmarks68, np.float64)
    height, width = image.shape[:2]
    model = face3d.shape_model(data_root)
    texture = None
    if out_path.suffix.lower() == ".obj":
        texture = render.bake_texture(model.texcoords, model.triangles, colors.colors, texture_size)
    files = mesh_io.write_mesh(out_path, mesh, texture)

    overlay = pictures.draw_landmarks(image, landmarks, color=(0, 255, 0), radius=max(1, width // 200))
    overlay = pictures.draw_landmarks(overlay, fit.projected[fit.landmark_vertices], color=(255, 0, 0),
                                 radius=max(1, width // 200))
    scale = render_size / max(width, height)
    overlay = cv2.resize(overlay, (max(1, round(width * scale)), max(1, round(height * scale))),
                         interpolation=cv2.INTER_AREA)
    panel = np.full((render_size, render_size, 3), 255, np.uint8)
    panel[: overlay.shape[0], : overlay.shape[1]] = overlay
    views = render.render_views(fit.vertices, model.triangles, colors.colors, size=render_size)
    views_path = out_path.with_name(out_path.stem + VIEWS_SUFFIX)
    io_utils.save_image_atomic(views_path, np.concatenate([panel, views], axis=1))
    return AvatarResult(fit=fit, colors=colors, files=[*files, views_path], error_px=built.error_px,
                        error_iod=built.error_iod)
