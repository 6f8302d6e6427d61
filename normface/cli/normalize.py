"""``normface normalize``: frontal, neutral, evenly lit faces from photos (the main job); a rerun
into the same folder resumes; ``--runner`` hands the same job to Apache Beam (:mod:`normface.cli.beam`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from normface.cli import beam
from normface.cli.common import (EXIT_FAILED, EXIT_OK, CommandError, Report, UsageError, add_model_option,
                                 check_model_arg, check_output_arg, load_normalizer, make_output_folder, model_backend,
                                 os_text, positive_int)

NAME = "normalize"
HELP = "normalize the faces in photos (files, folders, globs)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="image files, folders (searched recursively, symbolic links "
                        "followed) or globs; EXIF orientation and ICC profiles are applied")
    parser.add_argument("-o", "--output", default="normalized",
                        help="output folder (default: normalized/); may lie inside an input folder (its files "
                             "are skipped) but not be one")
    add_model_option(parser)
    parser.add_argument("--batch-size", type=positive_int, default=8, help="faces per network batch (default 8)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                        help="cpu (default) hides any GPU; gpu uses one when TensorFlow sees it")
    parser.add_argument("--format", choices=("png", "jpg"), default="png", help="output image format")
    parser.add_argument("--side-by-side", action="store_true", help="write input|output pairs")
    parser.add_argument("--json", action="store_true",
                        help="also write each face's landmarks and confidence as JSON")
    parser.add_argument("--all-faces", action="store_true", help="one output per face (default: the largest face)")
    parser.add_argument("--report", default=None,
                        help="append one JSON line per input and run to this file: status ok (outputs, face "
                             "fields), error (reason) or skipped (done by an earlier run)")
    parser.add_argument("--sheet", action="store_true", help="also write <output>/sheet.png: input|output pairs")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any input fails")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo every input; by default a rerun into the same output folder with the same "
                             "model, backend and options skips inputs whose outputs are complete (recorded in "
                             "<output>/.normface-run.jsonl)")
    parser.add_argument("--runner", default=None,
                        help="run on Apache Beam (the beam extra): DirectRunner, DataflowRunner, FlinkRunner, "
                             "SparkRunner...; other --flag=value arguments are then Beam pipeline options (e.g. "
                             "--direct_num_workers=2 --direct_running_mode=multi_processing). Failed inputs go to "
                             "<output>/failures.jsonl; inputs whose outputs exist are skipped")


def run(args: argparse.Namespace) -> int:
    from normface.serving import batch_files, run_manifest
    from normface.serving.normalizer import model_fingerprint
    from normface.utils import io_utils

    out = Path(args.output)
    check_output_arg(out, "-o/--output", folder=True)
    overlap = batch_files.output_overlap(args.inputs, out)
    if overlap:
        raise UsageError(f"-o/--output {out}: {overlap}")
    check_model_arg(args.model)
    report = Report(args.report)
    report.check()
    options = batch_files.BatchOptions(output=out, fmt=args.format, batch_size=args.batch_size,
                                       side_by_side=args.side_by_side, write_json=args.json,
                                       all_faces=args.all_faces, keep_pairs=args.sheet, debug=args.debug)
    if args.runner:
        return beam.run(args, out, options)
    manifest = run_manifest.RunManifest(out) if out.is_dir() else None
    files, problems = batch_files.discover(args.inputs, exclude=out,
                                           skip=manifest.recorded_outputs if manifest else None)
    if report.path is not None and report.path.resolve() in {f.path.resolve() for f in files}:
        raise UsageError(f"--report {report.path}: is one of the inputs")
    report.open()
    try:
        for p in problems:
            print(f"normface: {p}", file=sys.stderr)
            report({"input": p.input, "status": "error", "reason": p.reason})
        if not files:
            raise CommandError("no input images found")
        manifest = manifest or run_manifest.RunManifest(out)
        # The backend is part of the key: its faces differ from the other's by a grey level, so a run
        # resumed on the other backend redoes the inputs rather than mixing the two in one folder.
        backend, _ = model_backend(args)
        key = run_manifest.run_key(model_fingerprint(args.model, backend), options.output_options())
        digests: dict[Path, str] = {}
        pending, done = [], []
        for item in files:
            try:
                digests[item.path] = run_manifest.file_sha256(item.path)
            except OSError:
                pending.append(item)  # unreadable: reading it again reports why
                continue
            entry = None if args.overwrite else manifest.done(item.path, digests[item.path], item.rel, key)
            (done.append((item, entry)) if entry else pending.append(item))
        if done:
            print(f"resuming in {out}: {len(done)} of {len(files)} input(s) already done by an earlier run with "
                  f"the same model, backend and options (--overwrite redoes them); normalizing {len(pending)}")
        for item, entry in done:
            report({"input": str(item.path), "status": "skipped", "reason": "outputs complete from an earlier run",
                    "outputs": [str(out / o) for o in entry.outputs]})
        sheet_path = out / batch_files.SHEET_FILE
        need_sheet = args.sheet and (pending or not sheet_path.is_file())
        normalizer = load_normalizer(args) if pending or need_sheet else None
        make_output_folder(out)  # after the model loaded: a model that fails leaves no empty folder behind
        stale = io_utils.remove_stale_temps(out)
        if stale:
            print(f"removed {len(stale)} temporary file(s) of an interrupted run in {out}")

        def record(item, outputs):
            if item.path not in digests:
                return
            try:
                manifest.record(item.path, digests[item.path], item.rel, key, outputs)
            except OSError as err:
                raise batch_files.OutputWriteError(f"cannot write {manifest.path}: {os_text(err)}") from err

        summary = batch_files.BatchSummary()
        if pending:
            summary = batch_files.run_batch(normalizer, pending, options, report=report,
                                            progress=batch_files.ProgressBar(), on_done=record)
    finally:
        report.close()
    sheet_failed = False
    if need_sheet:
        # The inputs' pairs in input order, as a clean run lists them, whichever run made them.
        made: dict[Path, list] = {}
        for path, pair in zip(summary.pair_inputs, summary.pairs):
            made.setdefault(path, []).append(pair)
        earlier = {item.path: entry for item, entry in done}
        pairs = []
        for item in files:
            if len(pairs) >= batch_files.SHEET_MAX:
                break
            if item.path not in earlier:
                pairs += made.get(item.path, [])
                continue
            try:
                pairs += batch_files.sheet_pair_from_outputs(item, earlier[item.path].outputs, options, normalizer)
            except (OSError, ValueError) as err:
                print(batch_files.one_line(f"normface: {item.path}: left off the sheet: "
                                           f"{batch_files.error_text(err)}"), file=sys.stderr)
        if pairs:
            try:
                print(f"wrote {batch_files.write_sheet(sheet_path, pairs[:batch_files.SHEET_MAX])}")
            except OSError as err:
                sheet_failed = True
                print(batch_files.one_line(f"normface: {err}"), file=sys.stderr)
    failed = summary.problems + len(problems)
    print(f"normalized {summary.faces} face(s) from {summary.processed} of {len(pending)} file(s) into {out}"
          + (f"; {len(done)} already done" if done else "")
          + (f"; {failed} problem(s) (see stderr)" if failed else ""))
    if summary.processed + len(done) == 0 or summary.write_failures or sheet_failed or report.failed:
        return EXIT_FAILED
    if args.strict and failed:
        return EXIT_FAILED
    return EXIT_OK
