"""The ``normface`` command line: one subcommand per user-facing job.

    normface warp-demo -o out/          # the spline warp on a studio photo (paper Sec. 4)

Exit codes: 0 success, 1 the job failed (message on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys


def _warp_demo(args: argparse.Namespace) -> int:
    from normface import demo

    path = demo.run_warp_demo(args.output, args.photo)
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="normface",
        description="Frontal, neutral, evenly lit faces from photos in the wild (Cole et al. 2017).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    demo = sub.add_parser("warp-demo", help="warp a studio face by hand-placed control-point moves")
    demo.add_argument("-o", "--output", default="out", help="output .png file or folder (default: out/)")
    demo.add_argument("--photo", default=None, help="photo to warp (default: the London set's 001_03.jpg)")
    demo.set_defaults(func=_warp_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"normface {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
