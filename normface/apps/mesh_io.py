"""Reading and writing coloured triangle meshes: Wavefront OBJ (+MTL and texture) and ASCII PLY.

The avatar is handed to users as a file any viewer opens (MeshLab, Blender): OBJ with
per-vertex colours as the common ``v x y z r g b`` extension, the model's texture coordinates as
``vt`` and, optionally, a baked texture PNG referenced from an MTL file; or ASCII PLY with
``uchar`` vertex colours; or binary glTF (``.glb``, :func:`glb_bytes`, through trimesh) for web
viewers. Writes are atomic (``io_utils``). The readers cover what the writers
produce (triangles, one ``vt`` per vertex), enough to check a round trip, not every OBJ/PLY.

Colours are RGB floats in 0-255 in memory; OBJ stores them as 0-1 floats, PLY as 0-255 bytes.
Texture coordinates are (u, v) with v growing downwards (image rows); OBJ's ``vt`` has v growing
upwards, so it is written as ``1 - v``.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np

from normface.utils import io_utils

DECIMALS = 6


@dataclasses.dataclass
class Mesh:
    """vertices ``[n, 3]``, triangles ``[m, 3]`` (0-based), colors ``[n, 3]`` 0-255 or None,
    texcoords ``[n, 2]`` (u, v down) or None."""

    vertices: np.ndarray
    triangles: np.ndarray
    colors: np.ndarray | None = None
    texcoords: np.ndarray | None = None

    def __post_init__(self):
        self.vertices = np.asarray(self.vertices, dtype=np.float64)
        self.triangles = np.asarray(self.triangles, dtype=np.int64)
        n = self.vertices.shape[0]
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError(f"mesh vertices must be [n, 3], got {self.vertices.shape}")
        if self.triangles.ndim != 2 or self.triangles.shape[1] != 3:
            raise ValueError(f"mesh triangles must be [m, 3], got {self.triangles.shape}")
        if self.triangles.size and (self.triangles.min() < 0 or self.triangles.max() >= n):
            raise ValueError(f"mesh triangles index outside 0..{n - 1}")
        for name, width in (("colors", 3), ("texcoords", 2)):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64)
                if value.shape != (n, width):
                    raise ValueError(f"mesh {name} must be [{n}, {width}], got {value.shape}")
                setattr(self, name, value)


def _fmt(values: np.ndarray) -> str:
    return " ".join(f"{v:.{DECIMALS}g}" for v in values)


def obj_text(mesh: Mesh, mtl_name: str | None = None) -> str:
    """The OBJ text of ``mesh`` (vertex colours inline; ``usemtl face`` from ``mtl_name`` when
    given, which needs texcoords)."""
    if mtl_name is not None and mesh.texcoords is None:
        raise ValueError("obj_text: a material needs the mesh's texcoords")
    out = io.StringIO()
    out.write("# normface avatar: vertex colours as 'v x y z r g b' (0-1)\n")
    if mtl_name is not None:
        out.write(f"mtllib {mtl_name}\n")
    for i, v in enumerate(mesh.vertices):
        colour = f" {_fmt(mesh.colors[i] / 255.0)}" if mesh.colors is not None else ""
        out.write(f"v {_fmt(v)}{colour}\n")
    if mesh.texcoords is not None:
        for u, v in mesh.texcoords:
            out.write(f"vt {_fmt([u, 1.0 - v])}\n")
    if mtl_name is not None:
        out.write("usemtl face\n")
    for tri in mesh.triangles + 1:
        if mesh.texcoords is not None:
            out.write("f " + " ".join(f"{i}/{i}" for i in tri) + "\n")
        else:
            out.write(f"f {tri[0]} {tri[1]} {tri[2]}\n")
    return out.getvalue()


def write_obj(path: str | Path, mesh: Mesh, texture: np.ndarray | None = None) -> list[Path]:
    """Writes ``mesh`` as OBJ; with a ``[h, w, 3]`` uint8 ``texture`` (needs texcoords) also
    ``<stem>.mtl`` and ``<stem>_texture.png`` beside it. Returns the written paths, OBJ first."""
    path = Path(path)
    if path.suffix.lower() != ".obj":
        raise ValueError(f"{path}: an OBJ file must end in .obj")
    if texture is not None and mesh.texcoords is None:
        raise ValueError("write_obj: a texture needs the mesh's texcoords")
    written = [path]
    mtl_name = None
    if texture is not None:
        mtl, png = path.with_suffix(".mtl"), path.with_name(path.stem + "_texture.png")
        io_utils.save_image_atomic(png, texture)
        io_utils.write_bytes_atomic(mtl, f"newmtl face\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nmap_Kd {png.name}\n".encode())
        mtl_name = mtl.name
        written += [mtl, png]
    io_utils.write_bytes_atomic(path, obj_text(mesh, mtl_name).encode())
    return written


GLB_SCALE = 0.001  # the avatar's millimetres to glTF's metres


def glb_bytes(mesh: Mesh) -> bytes:
    """``mesh`` as binary glTF 2.0 (``.glb``, written by trimesh): positions in metres
    (``GLB_SCALE``), per-vertex colours as ``COLOR_0``; loads in any glTF viewer."""
    import trimesh

    colors = None
    if mesh.colors is not None:
        rgb = np.clip(np.round(mesh.colors), 0, 255).astype(np.uint8)
        colors = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)
    tm = trimesh.Trimesh(vertices=mesh.vertices * GLB_SCALE, faces=mesh.triangles, vertex_colors=colors,
                         process=False)
    return trimesh.Scene(tm).export(file_type="glb")


def read_glb(data: bytes) -> Mesh:
    """The first mesh of a ``.glb`` (as :func:`glb_bytes` writes it), back in millimetres."""
    import trimesh

    scene = trimesh.load(io.BytesIO(data), file_type="glb", process=False, force="scene")
    geometry = list(scene.geometry.values())
    if not geometry:
        raise ValueError("the glb holds no mesh")
    tm = geometry[0]
    colors = None
    if getattr(tm.visual, "kind", None) == "vertex":
        colors = np.asarray(tm.visual.vertex_colors)[:, :3].astype(np.float64)
    return Mesh(vertices=np.asarray(tm.vertices) / GLB_SCALE, triangles=np.asarray(tm.faces), colors=colors)


def read_obj(path: str | Path) -> Mesh:
    """Reads an OBJ of triangles (``v`` with optional colours, ``vt``, ``f a[/t[/n]] ...``)."""
    path = Path(path)
    vertices, colors, texcoords, faces = [], [], [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            if parts[0] == "v":
                values = [float(x) for x in parts[1:]]
                vertices.append(values[:3])
                if len(values) >= 6:
                    colors.append(values[3:6])
            elif parts[0] == "vt":
                u, v = float(parts[1]), float(parts[2])
                texcoords.append([u, 1.0 - v])
            elif parts[0] == "f":
                if len(parts) != 4:
                    raise ValueError("only triangles are supported")
                faces.append([int(p.split("/")[0]) - 1 for p in parts[1:]])
        except (ValueError, IndexError) as err:
            raise ValueError(f"{path}:{number}: bad OBJ line {line!r} ({err})") from err
    if colors and len(colors) != len(vertices):
        raise ValueError(f"{path}: some vertices have colours and some do not")
    return Mesh(
        vertices=np.array(vertices, dtype=np.float64).reshape(-1, 3),
        triangles=np.array(faces, dtype=np.int64).reshape(-1, 3),
        colors=np.array(colors) * 255.0 if colors else None,
        texcoords=np.array(texcoords) if texcoords and len(texcoords) == len(vertices) else None,
    )


def write_ply(path: str | Path, mesh: Mesh) -> None:
    """Writes ``mesh`` as ASCII PLY with ``uchar`` vertex colours (when it has colours)."""
    path = Path(path)
    if path.suffix.lower() != ".ply":
        raise ValueError(f"{path}: a PLY file must end in .ply")
    n, m = len(mesh.vertices), len(mesh.triangles)
    header = ["ply", "format ascii 1.0", "comment normface avatar", f"element vertex {n}",
              "property float x", "property float y", "property float z"]
    if mesh.colors is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header += [f"element face {m}", "property list uchar int vertex_indices", "end_header"]
    out = io.StringIO()
    out.write("\n".join(header) + "\n")
    colors = None if mesh.colors is None else np.clip(np.rint(mesh.colors), 0, 255).astype(np.int64)
    for i, v in enumerate(mesh.vertices):
        extra = "" if colors is None else f" {colors[i, 0]} {colors[i, 1]} {colors[i, 2]}"
        out.write(f"{_fmt(v)}{extra}\n")
    for tri in mesh.triangles:
        out.write(f"3 {tri[0]} {tri[1]} {tri[2]}\n")
    io_utils.write_bytes_atomic(path, out.getvalue().encode())


def read_ply(path: str | Path) -> Mesh:
    """Reads an ASCII PLY with vertex x, y, z (+ red, green, blue) and triangle faces."""
    path = Path(path)
    lines = path.read_text().splitlines()
    if not lines or lines[0].strip() != "ply":
        raise ValueError(f"{path}: not a PLY file")
    try:
        end = lines.index("end_header")
    except ValueError as err:
        raise ValueError(f"{path}: PLY header has no end_header") from err
    counts, props, element = {}, {"vertex": [], "face": []}, None
    for line in lines[1:end]:
        parts = line.split()
        if parts[:2] == ["format", "ascii"] or not parts or parts[0] == "comment":
            continue
        if parts[0] == "format":
            raise ValueError(f"{path}: only ASCII PLY is supported, got {line!r}")
        if parts[0] == "element":
            element = parts[1]
            counts[element] = int(parts[2])
        elif parts[0] == "property" and element in props:
            props[element].append(parts[-1])
    n, m = counts.get("vertex", 0), counts.get("face", 0)
    body = lines[end + 1:]
    if len(body) < n + m:
        raise ValueError(f"{path}: PLY body has {len(body)} lines, header promises {n + m}")
    try:
        table = np.array([[float(x) for x in line.split()] for line in body[:n]]).reshape(n, -1)
        faces = [[int(x) for x in line.split()] for line in body[n:n + m]]
    except ValueError as err:
        raise ValueError(f"{path}: bad PLY body ({err})") from err
    if any(f[0] != 3 or len(f) != 4 for f in faces):
        raise ValueError(f"{path}: only triangle faces are supported")
    column = {name: i for i, name in enumerate(props["vertex"])}
    colors = None
    if {"red", "green", "blue"} <= set(column):
        colors = table[:, [column["red"], column["green"], column["blue"]]]
    return Mesh(
        vertices=table[:, [column["x"], column["y"], column["z"]]],
        triangles=np.array([f[1:] for f in faces], dtype=np.int64).reshape(-1, 3),
        colors=colors,
    )


def write_mesh(path: str | Path, mesh: Mesh, texture: np.ndarray | None = None) -> list[Path]:
    """Writes OBJ or PLY by ``path``'s suffix; returns the written paths (main file first)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".obj":
        return write_obj(path, mesh, texture)
    if suffix == ".ply":
        write_ply(path, mesh)
        return [Path(path)]
    raise ValueError(f"{path}: mesh output must end in .obj or .ply")
