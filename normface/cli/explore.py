"""``normface explore``: a photo's normalized face moved along the perceived-age direction of a
linear probe and decoded: what the encoder keeps of age (age only; see normface.apps.explore)."""

from __future__ import annotations

import argparse
from pathlib import Path

from normface.cli.common import (EXIT_OK, UsageError, add_model_option, check_model_arg,
                                 load_normalizer, positive_int)
from normface.cli.portrait import check_image_output, largest_faces, read_photos, save

NAME = "explore"
HELP = "what the encoder keeps of perceived age: a strip of faces along the age direction"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", help="a photo with a face (the largest one)")
    parser.add_argument("-o", "--output", required=True, help="the strip, .png or .jpg")
    parser.add_argument("--attribute", default="age",
                        help="the direction to walk: age (the only one: no tool to change apparent gender or race)")
    parser.add_argument("--span", type=float, default=30.0,
                        help="years of predicted perceived age each way (default 30)")
    parser.add_argument("--steps", type=positive_int, default=7, help="faces in the strip (default 7)")
    add_model_option(parser)


def run(args: argparse.Namespace) -> int:
    from normface.apps import explore
    from normface.serving import merge

    out = Path(args.output)
    check_image_output(out)
    try:
        steps = explore.offsets(args.span, args.steps)
    except ValueError as err:
        raise UsageError(f"--span/--steps: {err}") from err
    try:
        direction = explore.load_direction(args.attribute)
    except ValueError as err:
        raise UsageError(f"--attribute {args.attribute}: {err}") from err
    check_model_arg(args.model)
    (photo,) = read_photos([args.photo])
    normalizer = load_normalizer(args)
    (face,) = largest_faces(normalizer, [photo], [args.photo])
    faces = explore.explore(normalizer, face.features, direction, steps)
    save(out, merge.strip(faces.image))
    print(f"wrote {out} ({args.steps} faces, {steps[0]:+.0f} to {steps[-1]:+.0f} years of predicted perceived age)")
    return EXIT_OK
