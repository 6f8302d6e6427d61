"""``normface morph``: faces between two photos' normalized faces (their features interpolated
and decoded), as a strip and an animated GIF or WebP."""

from __future__ import annotations

import argparse
from pathlib import Path

from normface.cli.common import (EXIT_OK, CommandError, UsageError, add_model_option, check_model_arg,
                                 check_output_arg, load_normalizer)
from normface.cli.portrait import check_image_output, largest_faces, read_photos, save

NAME = "morph"
HELP = "a morph between the normalized faces of two photos (strip and animation)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photos", nargs=2, metavar="PHOTO", help="the two photos (the largest face of each)")
    parser.add_argument("-o", "--output", required=True, help="the strip, .png or .jpg")
    parser.add_argument("--steps", type=int, default=8, help="faces in the strip, both ends included (2-64; default 8)")
    parser.add_argument("--animation", default=None,
                        help="also write an animation, .gif or .webp (there and back, looping)")
    add_model_option(parser)


def save_animation(path: Path, frames, duration_ms: int = 120) -> None:
    """Frames there and back, looping, written atomically."""
    from PIL import Image

    from normface.utils import io_utils

    seq = list(frames) + list(frames)[-2:0:-1]
    images = [Image.fromarray(f) for f in seq]
    fmt = "GIF" if path.suffix.lower() == ".gif" else "WEBP"
    try:
        with io_utils.atomic_path(path) as tmp:
            images[0].save(tmp, format=fmt, save_all=True, append_images=images[1:], duration=duration_ms, loop=0,
                           **({"lossless": True} if fmt == "WEBP" else {}))
    except OSError as err:
        raise CommandError(f"cannot write {path}: {io_utils.os_error_text(err)}") from err


def run(args: argparse.Namespace) -> int:
    from normface.serving import merge

    out = Path(args.output)
    check_image_output(out)
    if not 2 <= args.steps <= 64:
        raise UsageError(f"--steps {args.steps}: must be from 2 to 64")
    animation = Path(args.animation) if args.animation else None
    if animation is not None:
        if animation.suffix.lower() not in (".gif", ".webp"):
            raise UsageError(f"--animation {animation}: must end in .gif or .webp")
        check_output_arg(animation, "--animation", folder=False)
    check_model_arg(args.model)
    photos = read_photos(args.photos)
    normalizer = load_normalizer(args)
    a, b = largest_faces(normalizer, photos, args.photos)
    faces = merge.morph(normalizer, a.features, b.features, args.steps)
    save(out, merge.strip(faces.image))
    if animation is not None:
        save_animation(animation, faces.image)
    print(f"wrote {out}" + (f" and {animation}" if animation else "") + f" ({args.steps} faces)")
    return EXIT_OK
