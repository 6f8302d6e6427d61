"""The ``normface`` command line: one subcommand per user-facing job.

    normface normalize photos/ -o out/  # frontal, neutral, evenly lit faces (the main job)
    normface adjust photos/ -o out/     # white balance and exposure from the normalized face
    normface avatar photo.jpg -o a.obj  # a 3-D face mesh fitted to the normalized face
    normface warp-demo -o out/          # the spline warp on a studio photo (paper Sec. 4)

The one entry point above serving and the applications: it imports them lazily, per subcommand,
and never imports training or evaluation code.

Exit codes: 0 success, 1 the job failed or (normalize) nothing could be processed, or some input
failed with --strict (messages on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _warp_demo(args: argparse.Namespace) -> int:
    from normface.apps import warp_demo

    path = warp_demo.run_warp_demo(args.output, args.photo)
    print(f"wrote {path}")
    return 0


def _normalize(args: argparse.Namespace) -> int:
    import json

    from normface.serving import batch_files
    from normface.serving.normalizer import FaceNormalizer

    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    files, problems = batch_files.discover(args.inputs, exclude=Path(args.output))
    for p in problems:
        print(f"normface: {p}", file=sys.stderr)
    if not files:
        print("normface normalize: error: no input images found", file=sys.stderr)
        return 1
    normalizer = FaceNormalizer.from_pretrained(args.model, choose="largest")
    options = batch_files.BatchOptions(output=Path(args.output), fmt=args.format, batch_size=args.batch_size,
                                 side_by_side=args.side_by_side, write_json=args.json, all_faces=args.all_faces,
                                 keep_pairs=args.sheet)
    report_file = open(args.report, "a") if args.report else None
    try:
        def report(line: dict) -> None:
            if report_file:
                report_file.write(json.dumps(line) + "\n")
                report_file.flush()

        for item, p in zip(problems_inputs(args.inputs, problems), problems):
            report({"input": item, "status": "error", "reason": p})
        summary = batch_files.run_batch(normalizer, files, options, report=report, progress=batch_files.progress_bar)
    finally:
        if report_file:
            report_file.close()
    if args.sheet and summary.pairs:
        sheet = batch_files.write_sheet(options.output / "sheet.png", summary.pairs)
        print(f"wrote {sheet}")
    failed = summary.problems + len(problems)
    print(f"normalized {summary.faces} face(s) from {summary.processed} of {summary.files} file(s) into "
          f"{options.output}" + (f"; {failed} problem(s) (see stderr)" if failed else ""))
    if summary.processed == 0 or (args.strict and failed):
        return 1
    return 0


def problems_inputs(inputs: list[str], problems: list[str]) -> list[str]:
    """The input argument each discovery problem is about (problems start with it)."""
    return [next((i for i in inputs if p.startswith(f"{i}: ")), p) for p in problems]


def _adjust(args: argparse.Namespace) -> int:
    from normface.apps import adjust
    from normface.serving import batch_files
    from normface.utils import io_utils
    from normface.serving.normalizer import FaceNormalizer

    # A rerun must not adjust its own outputs when the output folder sits inside an input folder.
    files, problems = batch_files.discover(args.inputs, exclude=Path(args.output))
    for p in problems:
        print(f"normface: {p}", file=sys.stderr)
    normalizer = FaceNormalizer.from_pretrained(args.model)
    single = len(files) == 1 and Path(args.output).suffix.lower() in (".jpg", ".jpeg", ".png")
    done = 0
    for item in files:
        try:
            photo = batch_files.read_photo(item.path)
            adjustment = adjust.auto_adjust(photo, normalizer)
            suffix = item.rel.suffix if item.rel.suffix.lower() in (".jpg", ".jpeg", ".png") else ".png"
            out = Path(args.output) if single else Path(args.output) / item.rel.with_suffix(suffix)
            if out.resolve() == item.path.resolve():
                raise ValueError("output would overwrite the input; choose another -o")
            io_utils.save_image_atomic(out, adjustment.image)
            print(f"wrote {out}" + (" (greyscale: exposure only)" if adjustment.exposure_only else ""))
            done += 1
        except Exception as err:  # one bad photo must not stop the batch
            print(f"normface: {item.path}: {err}", file=sys.stderr)
    return 0 if done else 1


def _avatar(args: argparse.Namespace) -> int:
    from normface.apps import avatar
    from normface.serving import batch_files
    from normface.serving.normalizer import FaceNormalizer

    out = Path(args.output)
    if out.suffix.lower() not in (".obj", ".ply"):
        raise ValueError(f"-o/--output must end in .obj or .ply, got {out}")
    photo = batch_files.read_photo(Path(args.photo))
    normalizer = FaceNormalizer.from_pretrained(args.model)
    results = normalizer.normalize(photo)
    if not results:
        raise ValueError(f"{args.photo}: no face found")
    res = results[0]
    result = avatar.make_avatar(res.image, res.landmarks, out)
    print(f"wrote {out} and {out.with_name(out.stem + '_views.png')} "
          f"(landmark fit error {result.error_px:.2f} px)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="normface",
        description="Frontal, neutral, evenly lit faces from photos in the wild (Cole et al. 2017).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    norm = sub.add_parser("normalize", help="normalize the faces in photos (files, folders, globs)")
    norm.add_argument("inputs", nargs="+", help="image files, folders (searched recursively) or globs")
    norm.add_argument("-o", "--output", default="normalized", help="output folder (default: normalized/)")
    norm.add_argument("--model", default=None, help="export folder or .keras file (default: the shipped model)")
    norm.add_argument("--batch-size", type=int, default=8, help="faces per network batch (default 8)")
    norm.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                      help="cpu (default) hides any GPU; gpu uses one when TensorFlow sees it")
    norm.add_argument("--format", choices=("png", "jpg"), default="png", help="output image format")
    norm.add_argument("--side-by-side", action="store_true", help="write input|output pairs")
    norm.add_argument("--json", action="store_true", help="also write each face's landmarks and confidence as JSON")
    norm.add_argument("--all-faces", action="store_true", help="one output per face (default: the largest face)")
    norm.add_argument("--report", default=None, help="append one JSON line per input to this file")
    norm.add_argument("--sheet", action="store_true", help="also write <output>/sheet.png: input|output pairs")
    norm.add_argument("--strict", action="store_true", help="exit 1 if any input fails")
    norm.set_defaults(func=_normalize)
    adj = sub.add_parser("adjust", help="white balance and exposure from the normalized face (paper Sec. 7.4)")
    adj.add_argument("inputs", nargs="+", help="photos, folders or globs")
    adj.add_argument("-o", "--output", required=True, help="output file (one input) or folder")
    adj.add_argument("--model", default=None, help="export folder or .keras file (default: the shipped model)")
    adj.set_defaults(func=_adjust)
    av = sub.add_parser("avatar", help="a coloured 3-D face mesh from the normalized face (paper Sec. 7.3)")
    av.add_argument("photo", help="a photo with a face")
    av.add_argument("-o", "--output", required=True, help="mesh path ending in .obj or .ply")
    av.add_argument("--model", default=None, help="export folder or .keras file (default: the shipped model)")
    av.set_defaults(func=_avatar)
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
