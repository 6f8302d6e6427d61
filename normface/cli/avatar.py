"""``normface avatar``: a coloured 3-D face mesh fitted to the normalized face (paper Sec. 7.3)."""

from __future__ import annotations

import argparse
from pathlib import Path

from normface.cli.common import (EXIT_OK, CommandError, UsageError, add_model_option, check_model_arg,
                                 check_output_arg, load_normalizer, os_text, quiet_tensorflow)

NAME = "avatar"
HELP = "a coloured 3-D face mesh from the normalized face (paper Sec. 7.3)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", help="a photo with a face")
    parser.add_argument("-o", "--output", required=True, help="mesh path ending in .obj or .ply")
    add_model_option(parser)


def run(args: argparse.Namespace) -> int:
    from normface.serving import batch_files

    out = Path(args.output)
    if out.suffix.lower() not in (".obj", ".ply"):
        raise UsageError(f"-o/--output {out}: must end in .obj or .ply")
    check_output_arg(out, "-o/--output", folder=False)
    check_model_arg(args.model)
    quiet_tensorflow(args.debug, "avatar (the 3-D face fit)")
    try:
        photo = batch_files.read_photo(Path(args.photo))
    except (OSError, ValueError) as err:
        raise CommandError(f"{args.photo}: {batch_files.error_text(err).replace(f'{args.photo}: ', '')}") from err
    normalizer = load_normalizer(args)
    try:
        results = normalizer.normalize(photo)
    except ValueError as err:
        raise CommandError(f"{args.photo}: {err}") from err
    if not results:
        raise CommandError(f"{args.photo}: no face found")
    res = results[0]
    from normface.apps import avatar  # imports TensorFlow, quieted above

    try:
        result = avatar.make_avatar(res.image, res.landmarks, out)
    except OSError as err:
        raise CommandError(f"cannot write {out} (or the files beside it): {os_text(err)}") from err
    print(f"wrote {out} and {out.with_name(out.stem + '_views.png')} "
          f"(landmark fit error {result.error_px:.2f} px)")
    return EXIT_OK
