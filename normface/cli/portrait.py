"""``normface portrait``: one face from several photos of a person (their identity features
merged, decoded once); photos that look like someone else are named (an error with --strict)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from normface.cli.common import (EXIT_OK, CommandError, UsageError, add_model_option, check_model_arg,
                                 check_output_arg, load_normalizer, one_line, os_text)

NAME = "portrait"
HELP = "one face from several photos of the same person (features merged)"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photos", nargs="+", help="two or more photos of one person (the largest face of each)")
    parser.add_argument("-o", "--output", required=True, help="the merged face, .png or .jpg")
    add_model_option(parser)
    parser.add_argument("--weighting", choices=("mean", "agreement"), default="mean",
                        help="mean (default): every photo counts the same; agreement: a photo counts less the "
                             "further its dlib descriptor lies from the others'")
    parser.add_argument("--json", action="store_true",
                        help="also write <output>.json: each photo's weight and distance, landmarks, warnings")
    parser.add_argument("--strict", action="store_true",
                        help="fail (exit 1) when a photo has no face or looks like someone else (dlib distance "
                             "> 0.6 to the others) instead of warning")


def check_image_output(out: Path, flag: str = "-o/--output") -> None:
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(f"{flag} {out}: must end in .png or .jpg")
    check_output_arg(out, flag, folder=False)


def read_photos(paths: list[str]) -> list:
    """The photos, read upright in sRGB; CommandError naming the first unreadable one."""
    from normface.serving import batch_files

    photos = []
    for p in paths:
        try:
            photos.append(batch_files.read_photo(Path(p)))
        except (OSError, ValueError) as err:
            raise CommandError(f"{p}: {batch_files.error_text(err).replace(f'{p}: ', '')}") from err
    return photos


def largest_faces(normalizer, photos: list, paths: list[str]) -> list:
    """The largest face's :class:`~normface.serving.normalizer.Result` of each photo;
    CommandError naming the first photo without a usable face."""
    errors: dict[int, str] = {}
    results = normalizer.normalize_many(photos, errors=errors)
    for i, path in enumerate(paths):
        if i in errors or not results[i]:
            raise CommandError(f"{path}: {errors.get(i, 'no face found')}")
    return [r[0] for r in results]


def save(out: Path, image) -> None:
    from normface.utils import io_utils

    try:
        io_utils.save_image_atomic(out, image)
    except OSError as err:
        raise CommandError(f"cannot write {out}: {os_text(err)}") from err


def run(args: argparse.Namespace) -> int:
    from normface.serving.merge import MergeError

    out = Path(args.output)
    check_image_output(out)
    if len(args.photos) < 2:
        raise UsageError(f"photos: give two or more photos of the person to merge, got {len(args.photos)} "
                         "(normface normalize handles one)")
    check_model_arg(args.model)
    photos = read_photos(args.photos)
    normalizer = load_normalizer(args)
    errors: dict[int, str] = {}
    try:
        merged, _ = normalizer.normalize_merged(photos, names=args.photos, weighting=args.weighting,
                                                strict=args.strict, errors=None if args.strict else errors)
    except MergeError as err:
        raise CommandError(str(err)) from err
    for i, reason in errors.items():
        print(one_line(f"normface: {args.photos[i]}: {reason} (left out)"), file=sys.stderr)
    for text in merged.warnings:
        print(one_line(f"normface: warning: {text}"), file=sys.stderr)
    save(out, merged.image)
    kept = [p for i, p in enumerate(args.photos) if i not in errors]
    if args.json:
        from normface.utils import io_utils

        path = out.with_name(out.name + ".json")
        try:
            io_utils.write_bytes_atomic(path, json.dumps(merged.to_json(kept), indent=1).encode())
        except OSError as err:
            raise CommandError(f"cannot write {path}: {os_text(err)}") from err
    print(f"wrote {out}: {len(kept)} photo(s) merged (confidence {merged.confidence:.3f})"
          + (f"; {len(errors)} left out" if errors else "") + (f"; {len(merged.warnings)} warning(s)"
                                                                 if merged.warnings else ""))
    return EXIT_OK
