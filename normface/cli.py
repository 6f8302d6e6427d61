"""The ``normface`` command line: one subcommand per user-facing job.

    normface normalize photos/ -o out/  # frontal, neutral, evenly lit faces (the main job)
    normface adjust photos/ -o out/     # white balance and exposure from the normalized face
    normface avatar photo.jpg -o a.obj  # a 3-D face mesh fitted to the normalized face
    normface warp-demo -o out/          # the spline warp on a studio photo (paper Sec. 4)
    normface serve [--port 8000]        # the HTTP API and the web page (normface.serving.http_api)

The one entry point above serving and the applications: it imports them lazily, per subcommand,
and never imports training or evaluation code.

Errors are one line on stderr naming the file or argument and the reason; ``--debug`` adds the
Python traceback and TensorFlow's own log lines (hidden otherwise). Exit codes (``EXIT_HELP``,
printed by every ``--help``): 0 every input produced its outputs or was a reported per-file
failure (no face, unreadable file; ``--strict`` makes those 1), 1 nothing was produced, an output
could not be written or the job failed (e.g. a corrupt model), 2 usage errors (bad option values,
unusable output paths), found before the model loads. SIGTERM and Ctrl-C stop after removing
the temporary file being written (exit 143 / 130); a rerun of ``normalize`` resumes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
import traceback
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_HELP = """exit status:
  0  every input produced its outputs, or failed on its own with a reason on stderr (no face,
     unreadable file, ...); with --strict such a failure gives 1
  1  nothing was produced, an output could not be written, or the job failed (e.g. the model
     file is corrupt)
  2  usage error: a bad option value or an unusable output path (checked before the model loads)
errors are one line each, naming the file; --debug adds tracebacks and TensorFlow's log lines"""
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


class UsageError(Exception):
    """A bad argument (exit 2); the message names it."""


class CommandError(Exception):
    """The job cannot go on (exit 1); the message names the file and the reason."""


class Terminated(BaseException):
    """SIGTERM: unwinds like Ctrl-C, so the temporary file being written is removed."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _os_text(err: OSError) -> str:
    from normface.utils import io_utils

    return io_utils.os_error_text(err)


# --- checks before the model loads ------------------------------------------------------------


def _check_model_arg(model: str | None) -> None:
    if model is not None and not Path(model).exists():
        raise UsageError(f"--model {model}: no such file or folder")


def _check_output_arg(path: Path, flag: str, folder: bool) -> None:
    from normface.utils import io_utils

    reason = io_utils.unwritable_reason(path, folder=folder)
    if reason:
        raise UsageError(f"{flag} {path}: cannot write there: {reason}")


def _make_output_folder(path: Path) -> None:
    """Creates the output folder and checks a file can be created in it (exit 1 otherwise)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise CommandError(f"cannot write into the output folder {path}: {_os_text(err)}") from err


class _Report:
    """``--report``: one JSON line per input, appended; a failed write is reported once."""

    def __init__(self, path: str | None):
        self.path = Path(path) if path else None
        self.file = None
        self.failed = False

    def check(self) -> None:
        if self.path is not None:
            _check_output_arg(self.path, "--report", folder=False)

    def open(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "a")
        except OSError as err:
            raise UsageError(f"--report {self.path}: cannot open it: {_os_text(err)}") from err

    def __call__(self, line: dict) -> None:
        import json

        if self.file is None or self.failed:
            return
        try:
            self.file.write(json.dumps(line) + "\n")
            self.file.flush()
        except OSError as err:
            self.failed = True
            print(f"normface: cannot write the report {self.path}: {_os_text(err)}; no more report lines",
                  file=sys.stderr)

    def close(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()  # a failed flush was reported already
            self.file = None


# --- TensorFlow and the model -----------------------------------------------------------------


def _quiet_tensorflow(debug: bool) -> None:
    """Imports TensorFlow with its log lines hidden (unless ``debug``): the C++ lines TensorFlow
    prints while it loads and probes devices go to a buffer, printed only if the import fails."""
    if debug:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings

    warnings.filterwarnings("ignore")  # Keras' and TensorFlow's Python warnings (shown with --debug)
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")
            tf.config.list_physical_devices()  # the device probe logs too
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _load_normalizer(args, choose: str = "largest"):
    from normface.serving.normalizer import FaceNormalizer

    _quiet_tensorflow(args.debug)
    try:
        return FaceNormalizer.from_pretrained(args.model, choose=choose)
    except (OSError, ValueError) as err:
        raise CommandError(f"cannot load the model: {_os_text(err) if isinstance(err, OSError) else err}") from err


# --- subcommands --------------------------------------------------------------------------------


def _warp_demo(args: argparse.Namespace) -> int:
    output = Path(args.output)
    target = output if output.suffix.lower() == ".png" else output / "warp_demo.png"
    _check_output_arg(target, "-o/--output", folder=False)
    if args.photo is not None and not Path(args.photo).is_file():
        raise CommandError(f"{args.photo}: no such file")
    _quiet_tensorflow(args.debug)
    from normface.apps import warp_demo  # normface.apps imports TensorFlow

    try:
        path = warp_demo.run_warp_demo(output, args.photo)
    except FileNotFoundError as err:
        if err.filename is None:  # the demo photo or the data folder is missing (the message says which)
            raise CommandError(str(err)) from err
        raise CommandError(f"cannot write {target}: {_os_text(err)}") from err
    except OSError as err:
        raise CommandError(f"cannot write {target}: {_os_text(err)}") from err
    print(f"wrote {path}")
    return EXIT_OK


def _normalize(args: argparse.Namespace) -> int:
    from normface.serving import batch_files, run_manifest
    from normface.serving.normalizer import model_fingerprint
    from normface.utils import io_utils

    out = Path(args.output)
    _check_output_arg(out, "-o/--output", folder=True)
    overlap = batch_files.output_overlap(args.inputs, out)
    if overlap:
        raise UsageError(f"-o/--output {out}: {overlap}")
    _check_model_arg(args.model)
    report = _Report(args.report)
    report.check()
    if args.runner:
        return _normalize_beam(args, out)
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
        _make_output_folder(out)
        manifest = manifest or run_manifest.RunManifest(out)
        stale = io_utils.remove_stale_temps(out)
        if stale:
            print(f"removed {len(stale)} temporary file(s) of an interrupted run in {out}")
        options = batch_files.BatchOptions(output=out, fmt=args.format, batch_size=args.batch_size,
                                           side_by_side=args.side_by_side, write_json=args.json,
                                           all_faces=args.all_faces, keep_pairs=args.sheet, debug=args.debug)
        key = run_manifest.run_key(model_fingerprint(args.model), options.output_options())
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
                  f"the same model and options (--overwrite redoes them); normalizing {len(pending)}")
        for item, entry in done:
            report({"input": str(item.path), "status": "skipped", "reason": "outputs complete from an earlier run",
                    "outputs": [str(out / o) for o in entry.outputs]})
        sheet_path = out / batch_files.SHEET_FILE
        need_sheet = args.sheet and (pending or not sheet_path.is_file())
        normalizer = _load_normalizer(args) if pending or need_sheet else None

        def record(item, outputs):
            if item.path not in digests:
                return
            try:
                manifest.record(item.path, digests[item.path], item.rel, key, outputs)
            except OSError as err:
                raise batch_files.OutputWriteError(f"cannot write {manifest.path}: {_os_text(err)}") from err

        summary = batch_files.BatchSummary()
        if pending:
            summary = batch_files.run_batch(normalizer, pending, options, report=report,
                                            progress=batch_files.ProgressBar(), on_done=record)
    finally:
        report.close()
    sheet_failed = False
    if need_sheet:
        pairs = list(summary.pairs)
        for item, entry in done:
            if len(pairs) >= batch_files.SHEET_MAX:
                break
            try:
                pairs += batch_files.sheet_pair_from_outputs(item, entry.outputs, options, normalizer)
            except (OSError, ValueError) as err:
                print(f"normface: {item.path}: left off the sheet: {batch_files.error_text(err)}", file=sys.stderr)
        if pairs:
            try:
                print(f"wrote {batch_files.write_sheet(sheet_path, pairs[:batch_files.SHEET_MAX])}")
            except OSError as err:
                sheet_failed = True
                print(f"normface: {err}", file=sys.stderr)
    failed = summary.problems + len(problems)
    print(f"normalized {summary.faces} face(s) from {summary.processed} of {len(pending)} file(s) into {out}"
          + (f"; {len(done)} already done" if done else "")
          + (f"; {failed} problem(s) (see stderr)" if failed else ""))
    if summary.processed + len(done) == 0 or summary.write_failures or sheet_failed or report.failed:
        return EXIT_FAILED
    if args.strict and failed:
        return EXIT_FAILED
    return EXIT_OK


def _adjust(args: argparse.Namespace) -> int:
    from normface.serving import batch_files
    from normface.utils import io_utils

    out = Path(args.output)
    named_file = (len(args.inputs) == 1 and Path(args.inputs[0]).is_file() and out.suffix.lower() in PHOTO_SUFFIXES)
    _check_output_arg(out, "-o/--output", folder=not named_file)
    overlap = batch_files.output_overlap(args.inputs, out)
    if overlap:
        raise UsageError(f"-o/--output {out}: {overlap}")
    _check_model_arg(args.model)
    # A rerun must not adjust its own outputs when the output folder sits inside an input folder.
    files, problems = batch_files.discover(args.inputs, exclude=out)
    for p in problems:
        print(f"normface: {p}", file=sys.stderr)
    if not files:
        raise CommandError("no input images found")
    single = len(files) == 1 and out.suffix.lower() in PHOTO_SUFFIXES
    if not single:
        _make_output_folder(out)
    normalizer = _load_normalizer(args)
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
                raise CommandError(f"cannot write {target}: {_os_text(err)}") from err
            print(f"wrote {target}" + (" (greyscale: exposure only)" if adjustment.exposure_only else ""))
            done += 1
        except (ValueError, OSError, CommandError) as err:  # one bad photo must not stop the batch
            failures += 1
            text = batch_files.error_text(err).replace(f"{item.path}: ", "")
            print(f"normface: {item.path}: {text}", file=sys.stderr)
            if args.debug:
                traceback.print_exception(err)
    if not done or write_failures or (args.strict and (failures or problems)):
        return EXIT_FAILED
    return EXIT_OK


def _avatar(args: argparse.Namespace) -> int:
    from normface.serving import batch_files

    out = Path(args.output)
    if out.suffix.lower() not in (".obj", ".ply"):
        raise UsageError(f"-o/--output {out}: must end in .obj or .ply")
    _check_output_arg(out, "-o/--output", folder=False)
    _check_model_arg(args.model)
    try:
        photo = batch_files.read_photo(Path(args.photo))
    except (OSError, ValueError) as err:
        raise CommandError(f"{args.photo}: {batch_files.error_text(err).replace(f'{args.photo}: ', '')}") from err
    normalizer = _load_normalizer(args)
    try:
        results = normalizer.normalize(photo)
    except ValueError as err:
        raise CommandError(f"{args.photo}: {err}") from err
    if not results:
        raise CommandError(f"{args.photo}: no face found")
    res = results[0]
    from normface.apps import avatar  # imports TensorFlow: after _load_normalizer has quieted it

    try:
        result = avatar.make_avatar(res.image, res.landmarks, out)
    except OSError as err:
        raise CommandError(f"cannot write {out} (or the files beside it): {_os_text(err)}") from err
    print(f"wrote {out} and {out.with_name(out.stem + '_views.png')} "
          f"(landmark fit error {result.error_px:.2f} px)")
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    _check_model_arg(args.model)
    from normface.serving import http_api

    limits = http_api.Limits(max_files=args.max_files, max_file_bytes=int(args.max_file_mb * 1024 * 1024),
                             max_queue=args.queue, max_batch=args.batch_size, timeout_s=args.timeout)
    normalizer = _load_normalizer(args)
    from normface.apps import adjust, avatar  # imports TensorFlow: after _load_normalizer has quieted it

    apps = http_api.Applications(adjust=adjust.adjust_with_result, avatar=avatar.avatar_bytes,
                                 avatar_missing=avatar.surrey_model_missing())
    where = f"http://{args.host}:{args.port}/"
    print(f"normface: serving {where} (the page), {where}docs (the API); Ctrl-C stops"
          + (f"\nnormface: no avatar: {apps.avatar_missing}" if apps.avatar_missing else ""), flush=True)
    http_api.serve(normalizer, host=args.host, port=args.port, applications=apps, limits=limits,
                   model_path=args.model, log_level="info" if args.debug else "warning")
    return EXIT_OK


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port 1-65535, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


# --- the parser -------------------------------------------------------------------------------------


def _normalize_beam(args: argparse.Namespace, out: Path) -> int:
    """``normface normalize --runner=...``: the same inputs and outputs on Apache Beam
    (:mod:`normface.pipelines.normalize`); the remaining ``--flag=value`` arguments are the
    pipeline's options. Failed inputs are in <output>/failures.jsonl; --report is rewritten."""
    from normface.serving import batch_files

    if args.sheet:
        raise UsageError("--sheet: not with --runner (the pairs are spread over the workers); "
                         "run normface normalize without --runner on a few photos for a sheet")
    try:
        from normface.pipelines import common, normalize as beam_normalize

        beam_options = common.pipeline_options(args.runner, args.beam_args)
    except ImportError as err:
        raise UsageError(f"--runner={args.runner}: {err}") from err
    files, problems = batch_files.discover(args.inputs, exclude=out)
    for p in problems:
        print(f"normface: {p}", file=sys.stderr)
    if not files:
        raise CommandError("no input images found")
    _make_output_folder(out)
    options = batch_files.BatchOptions(output=out, fmt=args.format, batch_size=args.batch_size,
                                       side_by_side=args.side_by_side, write_json=args.json,
                                       all_faces=args.all_faces, debug=args.debug)
    _quiet_tensorflow(args.debug)
    result = beam_normalize.normalize_files(files, options, beam_options, model=args.model, report_path=args.report,
                                            overwrite=args.overwrite)
    failed = sum(result["failure_counters"].values()) + len(problems)
    print(f"normalized {result['counters'].get('normalized', 0)} of {len(files) - result['skipped']} file(s) on "
          f"{args.runner} into {out}" + (f"; {result['skipped']} already done" if result["skipped"] else "")
          + (f"; {failed} problem(s): {result['failure_counters']} (see {result['failure_report']})" if failed else ""))
    if result["counters"].get("normalized", 0) + result["skipped"] == 0 or (args.strict and failed):
        return EXIT_FAILED
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="normface",
        description="Frontal, neutral, evenly lit faces from photos in the wild (Cole et al. 2017).",
        epilog=EXIT_HELP, formatter_class=formatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and TensorFlow's log lines")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and TensorFlow's log lines")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name, help):
        return sub.add_parser(name, help=help, description=help, epilog=EXIT_HELP, formatter_class=formatter,
                              parents=[common])

    norm = add("normalize", "normalize the faces in photos (files, folders, globs)")
    norm.add_argument("inputs", nargs="+", help="image files, folders (searched recursively, symbolic links "
                      "followed) or globs; EXIF orientation and ICC profiles are applied")
    norm.add_argument("-o", "--output", default="normalized",
                      help="output folder (default: normalized/); may lie inside an input folder (its files "
                           "are skipped) but not be one")
    norm.add_argument("--model", default=None, help="export folder or .keras file (default: the shipped model)")
    norm.add_argument("--batch-size", type=_positive_int, default=8, help="faces per network batch (default 8)")
    norm.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                      help="cpu (default) hides any GPU; gpu uses one when TensorFlow sees it")
    norm.add_argument("--format", choices=("png", "jpg"), default="png", help="output image format")
    norm.add_argument("--side-by-side", action="store_true", help="write input|output pairs")
    norm.add_argument("--json", action="store_true", help="also write each face's landmarks and confidence as JSON")
    norm.add_argument("--all-faces", action="store_true", help="one output per face (default: the largest face)")
    norm.add_argument("--report", default=None,
                      help="append one JSON line per input and run to this file: status ok (outputs, face "
                           "fields), error (reason) or skipped (done by an earlier run)")
    norm.add_argument("--sheet", action="store_true", help="also write <output>/sheet.png: input|output pairs")
    norm.add_argument("--strict", action="store_true", help="exit 1 if any input fails")
    norm.add_argument("--overwrite", action="store_true",
                      help="redo every input; by default a rerun into the same output folder with the same "
                           "model and options skips inputs whose outputs are complete (recorded in "
                           "<output>/.normface-run.jsonl)")
    norm.add_argument("--runner", default=None,
                      help="run on Apache Beam (the beam extra): DirectRunner, DataflowRunner, FlinkRunner, "
                           "SparkRunner...; other --flag=value arguments are then Beam pipeline options (e.g. "
                           "--direct_num_workers=2 --direct_running_mode=multi_processing). Failed inputs go to "
                           "<output>/failures.jsonl; inputs whose outputs exist are skipped")
    norm.set_defaults(func=_normalize)
    adj = add("adjust", "white balance and exposure from the normalized face (paper Sec. 7.4)")
    adj.add_argument("inputs", nargs="+", help="photos, folders or globs")
    adj.add_argument("-o", "--output", required=True,
                     help="output file (one input) or folder; photos keep their EXIF (Orientation 1) and ICC "
                          "profile, JPEG at quality 95, other formats as PNG")
    adj.add_argument("--model", default=None, help="export folder or .keras file (default: the shipped model)")
    adj.add_argument("--strict", action="store_true", help="exit 1 if any input fails")
    adj.set_defaults(func=_adjust)
    av = add("avatar", "a coloured 3-D face mesh from the normalized face (paper Sec. 7.3)")
    av.add_argument("photo", help="a photo with a face")
    av.add_argument("-o", "--output", required=True, help="mesh path ending in .obj or .ply")
    av.add_argument("--model", default=None, help="export folder or .keras file (default: the shipped model)")
    av.set_defaults(func=_avatar)
    srv = add("serve", "serve the HTTP API (/v1/normalize, /v1/adjust, /v1/avatar, /docs) and the web page "
                       "(/) from one process")
    srv.add_argument("--host", default="127.0.0.1",
                     help="address to bind (default 127.0.0.1, this machine only; put a reverse proxy with TLS, "
                          "authentication and rate limits in front before exposing it, see the README)")
    srv.add_argument("--port", type=_port, default=8000, help="TCP port (default 8000)")
    srv.add_argument("--model", default=None, help="export folder or .keras file (default: the shipped model)")
    srv.add_argument("--max-files", type=_positive_int, default=8, help="photos per request (default 8)")
    srv.add_argument("--max-file-mb", type=_positive_float, default=20.0, help="megabytes per photo (default 20)")
    srv.add_argument("--queue", type=_positive_int, default=64,
                     help="photos waiting for the network before requests get 503 (default 64)")
    srv.add_argument("--batch-size", type=_positive_int, default=16, help="most faces per network call (default 16)")
    srv.add_argument("--timeout", type=_positive_float, default=60.0,
                     help="seconds a request may take before it gets 504 (default 60)")
    srv.set_defaults(func=_serve)
    demo = add("warp-demo", "warp a studio face by hand-placed control-point moves")
    demo.add_argument("-o", "--output", default="out", help="output .png file or folder (default: out/)")
    demo.add_argument("--photo", default=None, help="photo to warp (default: the London set's 001_03.jpg)")
    demo.set_defaults(func=_warp_demo)
    return parser


def _terminate(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
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
        print(f"usage: {prog} ... (see {prog} --help)\n{prog}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (CommandError, OSError, ValueError) as err:
        if args.debug:
            traceback.print_exc()
        text = _os_text(err) if isinstance(err, OSError) else str(err)
        print(f"{prog}: error: {text}", file=sys.stderr)
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
        print(f"{prog}: error: unexpected {type(err).__name__}: {err} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_FAILED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
