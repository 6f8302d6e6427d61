"""3-D avatar demo on a real photo (paper Sec. 7.3, Fig. 13), before the trained model exists.

Detects the 68 landmarks of the photo's largest face (dlib), fits the Surrey shape model to them
(normface.apps.avatar), colours the mesh from the photo itself (a stand-in for the normalized face the
``normface avatar`` command will use) and writes ``<output>/<stem>.obj`` (+ ``.mtl`` and
``<stem>_texture.png``), ``<stem>.ply`` and ``<stem>_views.png`` (the input with its landmarks,
then renders at yaw 0 and 30 degrees).
Prints the landmark reprojection error in pixels and in inter-ocular distances.

    python experiments/avatar_demo.py [--image=PATH] [--output=DIR]

The default photo is London Set 001 (Face Research Lab London Set, CC BY 4.0, DeBruine & Jones
2017); the default output folder is ``<workspace>/avatar_demo``, never the repository.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from normface.apps import avatar
from normface.apps import mesh_io
from normface.faces.detection import find_faces68
from normface.utils import io_utils
from normface.utils import paths

FLAGS = flags.FLAGS
flags.DEFINE_string("image", None, "Photo (default: studio/london_neutral/001_03.jpg in the data folder).")
flags.DEFINE_string("output", None, "Output folder (default <workspace>/avatar_demo).")
flags.DEFINE_string("data_root", None, "Face data folder (default $NORMFACE_DATA or ../shared/data).")


def main(argv):
    del argv
    root = paths.Path(FLAGS.data_root) if FLAGS.data_root else paths.require_data_dir()
    image_path = paths.Path(FLAGS.image) if FLAGS.image else root / "studio" / "london_neutral" / "001_03.jpg"
    out_dir = paths.Path(FLAGS.output) if FLAGS.output else paths.workspace_dir() / "avatar_demo"
    image = io_utils.read_rgb(image_path)
    faces = find_faces68(image)
    if not faces:
        raise SystemExit(f"{image_path}: no face found")
    landmarks = faces[0].landmarks
    start = time.perf_counter()
    result = avatar.make_avatar(image, landmarks, out_dir / f"{image_path.stem}.obj", data_root=root)
    seconds = time.perf_counter() - start
    ply = out_dir / f"{image_path.stem}.ply"
    mesh_io.write_ply(ply, mesh_io.read_obj(result.files[0]))
    yaw, pitch, roll = result.fit.angles()
    print(f"{image_path.name}: {image.shape[1]}x{image.shape[0]}, fit + colour + write in {seconds:.1f} s")
    print(f"landmark reprojection error: mean {result.error_px:.2f} px ({result.error_iod:.4f} IOD), "
          f"max {result.fit.errors.max():.2f} px over {len(result.fit.errors)} landmarks")
    print(f"pose yaw {yaw:.1f} pitch {pitch:.1f} roll {roll:.1f} deg, scale {result.fit.scale:.3f}, "
          f"|coefficients| {float((result.fit.coefficients ** 2).sum() ** 0.5):.2f}; "
          f"confident vertices {(result.colors.confidence > 0.5).mean():.0%}")
    for path in [*result.files, ply]:
        print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
