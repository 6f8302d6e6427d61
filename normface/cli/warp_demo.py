"""``normface warp-demo``: the spline warp alone, on a studio photo (paper Sec. 4)."""

from __future__ import annotations

import argparse
from pathlib import Path

from normface.cli.common import EXIT_OK, CommandError, check_output_arg, os_text, quiet_tensorflow

NAME = "warp-demo"
HELP = "warp a studio face by hand-placed control-point moves"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="out", help="output .png file or folder (default: out/)")
    parser.add_argument("--photo", default=None, help="photo to warp (default: the London set's 001_03.jpg)")


def run(args: argparse.Namespace) -> int:
    output = Path(args.output)
    target = output if output.suffix.lower() == ".png" else output / "warp_demo.png"
    check_output_arg(target, "-o/--output", folder=False)
    if args.photo is not None and not Path(args.photo).is_file():
        raise CommandError(f"{args.photo}: no such file")
    quiet_tensorflow(args.debug, "warp-demo (the TensorFlow spline warp)")
    from normface.apps import warp_demo

    try:
        path = warp_demo.run_warp_demo(output, args.photo)
    except FileNotFoundError as err:
        if err.filename is None:  # the demo photo or the data folder is missing (the message says which)
            raise CommandError(str(err)) from err
        raise CommandError(f"cannot write {target}: {os_text(err)}") from err
    except OSError as err:
        raise CommandError(f"cannot write {target}: {os_text(err)}") from err
    print(f"wrote {path}")
    return EXIT_OK
