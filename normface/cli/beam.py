"""The Apache Beam launcher of ``normface normalize --runner=...``: the same inputs and outputs on
Beam (:mod:`normface.pipelines.normalize`, the ``beam`` extra)."""

from __future__ import annotations

import argparse
from pathlib import Path

from normface.cli.common import (EXIT_FAILED, EXIT_OK, CommandError, UsageError, make_output_folder, print_problems,
                                 quiet_tensorflow)


def run(args: argparse.Namespace, out: Path, options) -> int:
    """``normface normalize --runner=...``: the remaining ``--flag=value`` arguments
    (``args.beam_args``) are the pipeline's options. Failed inputs are in
    <output>/failures.jsonl; --report is rewritten. ``options``: the batch options of the run."""
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
    print_problems(problems)
    if not files:
        raise CommandError("no input images found")
    make_output_folder(out)
    quiet_tensorflow(args.debug)
    result = beam_normalize.normalize_files(files, options, beam_options, model=args.model, report_path=args.report,
                                            overwrite=args.overwrite)
    failed = sum(result["failure_counters"].values()) + len(problems)
    print(f"normalized {result['counters'].get('normalized', 0)} of {len(files) - result['skipped']} file(s) on "
          f"{args.runner} into {out}" + (f"; {result['skipped']} already done" if result["skipped"] else "")
          + (f"; {failed} problem(s): {result['failure_counters']} (see {result['failure_report']})" if failed else ""))
    if result["counters"].get("normalized", 0) + result["skipped"] == 0 or (args.strict and failed):
        return EXIT_FAILED
    return EXIT_OK
