"""``normface adjust``: white balance and exposure from the normalized face (paper Sec. 7.4)."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from normface.cli.common import (EXIT_FAILED, EXIT_OK, PHOTO_SUFFIXES, CommandError, UsageError, add_model_option,
                                 check_model_arg, check_output_arg, load_normalizer, make_output_folder, os_text,
                                 print_problems)

NAME = "adjust"
HELP = "white balance and exposure from the normalized face (paper Sec. 7.4)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="photos, folders or globs")
    parser.add_argument("-o", "--output", required=True,
                        help="output file (one input) or folder; photos keep their EXIF (Orientation 1) and ICC "
                             "profile, JPEG at quality 95, other formats as PNG")
    add_model_option(parser)
    parser.add_argument("--strict", action="store_true", help="exit 1 if any input fails")


def run(args: argparse.Namespace) -> int:
    from normface.serving import batch_files
    from normface.utils import io_utils

    out = Path(args.output)
    named_file = (len(args.inputs) == 1 and Path(args.inputs[0]).is_file() and out.suffix.lower() in PHOTO_SUFFIXES)
    check_output_arg(out, "-o/--output", folder=not named_file)
    overlap = batch_files.output_overlap(args.inputs, out)
    if overlap:
        raise UsageError(f"-o/--output {out}: {overlap}")
    check_model_arg(args.model)
    # A rerun must not adjust its own outputs when the output folder sits inside an input folder.
    files, problems = batch_files.discover(args.inputs, exclude=out)
    print_problems(problems)
    if not files:
        raise CommandError("no input images found")
    single = len(files) == 1 and out.suffix.lower() in PHOTO_SUFFIXES
    normalizer = load_normalizer(args)
    if not single:
        make_output_folder(out)  # after the model loaded: a model that fails leaves no empty folder behind
    from normface.apps import adjust

    done = failures = write_failures = 0
    for item in files:
        suffix = item.rel.suffix if item.rel.suffix.lower() in PHOTO_SUFFIXES else ".png"
        target = out if single else out / item.rel.with_suffix(suffix)
        try:
            photo = io_utils.read_image(item.path)
            adjustment = adjust.auto_adjust(photo.pixels, normalizer)
            if target.resolve() == item.path.resolve():
                raise ValueError("the output would overwrite the input; choose another -o")
            try:
                io_utils.save_photo_atomic(target, adjustment.image, like=photo)
            except OSError as err:
                write_failures += 1
                raise CommandError(f"cannot write {target}: {os_text(err)}") from err
            print(batch_files.one_line(f"wrote {target}") + (" (greyscale: exposure only)"
                                                             if adjustment.exposure_only else ""))
            done += 1
        except (ValueError, OSError, CommandError) as err:  # one bad photo must not stop the batch
            failures += 1
            text = batch_files.error_text(err).replace(f"{item.path}: ", "")
            print(batch_files.one_line(f"normface: {item.path}: {text}"), file=sys.stderr)
            if args.debug:
                traceback.print_exception(err)
    if not done or write_failures or (args.strict and (failures or problems)):
        return EXIT_FAILED
    return EXIT_OK
