"""The ``normface`` command line: one subcommand per user-facing job.

    normface normalize photos/ -o out/  # frontal, neutral, evenly lit faces (the main job)
    normface adjust photos/ -o out/     # white balance and exposure from the normalized face
    normface avatar photo.jpg -o a.obj  # a 3-D face mesh fitted to the normalized face
    normface portrait a.jpg b.jpg -o f.png # one face from several photos of a person
    normface morph a.jpg b.jpg -o m.png # a morph between two normalized faces
    normface explore p.jpg -o strip.png # what the encoder keeps of perceived age
    normface warp-demo -o out/          # the spline warp on a studio photo (paper Sec. 4)
    normface serve [--port 8000]        # the HTTP API and the web page (normface.serving.http_api)
    normface --version                  # normface <version>

The one entry point above serving and the applications: it imports them lazily, per subcommand,
and never imports training or evaluation code. One module per subcommand holds its options
(``add_arguments``) and its handler (``run``): ``normalize`` (with the Apache Beam launcher in
``beam``), ``adjust``, ``avatar``, ``portrait``, ``morph``, ``explore``, ``serve``, ``warp_demo``;
``common`` holds what they share.

Errors are one line on stderr naming the file or argument and the reason; ``--debug`` adds the
Python traceback and TensorFlow's own log lines (hidden otherwise). Exit codes (``EXIT_HELP``,
printed by every ``--help``): 0 every input produced its outputs or was a reported per-file
failure (no face, unreadable file; ``--strict`` makes those 1), 1 nothing was produced, an output
could not be written or the job failed (e.g. a corrupt model), 2 usage errors (bad option values,
unusable output paths), found before the model loads; ``normface`` without a subcommand lists
them and exits 2. SIGTERM and Ctrl-C stop after removing the temporary file being written (exit
143 / 130); a rerun of ``normalize`` resumes.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback

from normface import __version__
from normface.cli import adjust, avatar, explore, morph, normalize, portrait, serve, warp_demo
from normface.cli.common import (EXIT_FAILED, EXIT_HELP, EXIT_OK, EXIT_USAGE, CommandError, Terminated, UsageError,
                                 missing_tensorflow, one_line, os_text)
from normface.cli.common import load_model as _load_normalizer  # the seam common.load_normalizer calls

__all__ = ["EXIT_FAILED", "EXIT_HELP", "EXIT_OK", "EXIT_USAGE", "CommandError", "UsageError", "build_parser", "main"]

SUBCOMMANDS = (normalize, adjust, avatar, portrait, morph, explore, serve, warp_demo)  # in the order of the help


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="normface",
        description="Frontal, neutral, evenly lit faces from photos in the wild (Cole et al. 2017).",
        epilog=EXIT_HELP, formatter_class=formatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and TensorFlow's log lines")
    parser.add_argument("--version", action="version", version=f"normface {__version__}",
                        help="print the version (normface <version>) and exit")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and TensorFlow's log lines")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        command = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP, epilog=EXIT_HELP,
                                 formatter_class=formatter, parents=[common])
        module.add_arguments(command)
        command.set_defaults(func=module.run)
    return parser


def _missing_command(parser: argparse.ArgumentParser) -> None:
    """``normface`` alone: the usage, the subcommands and what each does, exit 2."""
    width = max(len(m.NAME) for m in SUBCOMMANDS)
    listed = "\n".join(f"  {m.NAME:<{width}}  {m.HELP}" for m in SUBCOMMANDS)
    parser.exit(EXIT_USAGE, f"{parser.format_usage()}normface: error: a COMMAND is required:\n{listed}\n"
                            "(normface COMMAND --help describes its options)\n")


def _terminate(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        _missing_command(parser)
    if extra and not getattr(args, "runner", None):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.beam_args = extra
    args.debug = bool(getattr(args, "debug", False))
    prog = f"normface {args.command}"
    if args.command == "normalize" and args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except UsageError as err:
        print(f"usage: {prog} ... (see {prog} --help)\n{prog}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except (CommandError, OSError, ValueError) as err:
        if args.debug:
            traceback.print_exc()
        text = os_text(err) if isinstance(err, OSError) else str(err)
        print(f"{prog}: error: {one_line(text)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"{prog}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except Exception as err:  # noqa: BLE001 -- a bug: one line, the traceback with --debug
        if args.debug:
            traceback.print_exc()
        if isinstance(err, ModuleNotFoundError) and (err.name or "").split(".")[0] in ("tensorflow", "keras"):
            # a path that needs TensorFlow without quiet_tensorflow's own check (issue 31)
            print(f"{prog}: error: {missing_tensorflow('this')}", file=sys.stderr)
            return EXIT_FAILED
        print(f"{prog}: error: unexpected {type(err).__name__}: {one_line(err)} (rerun with --debug for the "
              "traceback)", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
