"""``normface serve``: the HTTP API and the web page from one process (normface.serving.http_api)."""

from __future__ import annotations

import argparse

from normface.cli.common import (EXIT_OK, add_model_option, check_model_arg, load_normalizer, port, positive_float,
                                 positive_int)

NAME = "serve"
HELP = "serve the HTTP API (/v1/normalize, /v1/adjust, /v1/avatar, /docs) and the web page (/) from one process"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1, this machine only; put a reverse proxy with TLS, "
                             "authentication and rate limits in front before exposing it, see the README)")
    parser.add_argument("--port", type=port, default=8000, help="TCP port (default 8000)")
    add_model_option(parser)
    parser.add_argument("--max-files", type=positive_int, default=8, help="photos per request (default 8)")
    parser.add_argument("--max-file-mb", type=positive_float, default=20.0, help="megabytes per photo (default 20)")
    parser.add_argument("--queue", type=positive_int, default=64,
                        help="photos waiting for the network before requests get 503 (default 64)")
    parser.add_argument("--batch-size", type=positive_int, default=16,
                        help="most faces per network call (default 16)")
    parser.add_argument("--timeout", type=positive_float, default=60.0,
                        help="seconds a request may take before it gets 504 (default 60)")


def run(args: argparse.Namespace) -> int:
    check_model_arg(args.model)
    from normface.serving import http_api

    limits = http_api.Limits(max_files=args.max_files, max_file_bytes=int(args.max_file_mb * 1024 * 1024),
                             max_queue=args.queue, max_batch=args.batch_size, timeout_s=args.timeout)
    normalizer = load_normalizer(args)
    from normface.apps import adjust, avatar  # imports TensorFlow: after load_normalizer has quieted it

    apps = http_api.Applications(adjust=adjust.adjust_with_result, avatar=avatar.avatar_bytes,
                                 avatar_missing=avatar.surrey_model_missing())
    where = f"http://{args.host}:{args.port}/"
    print(f"normface: serving {where} (the page), {where}docs (the API); Ctrl-C stops"
          + (f"\nnormface: no avatar: {apps.avatar_missing}" if apps.avatar_missing else ""), flush=True)
    http_api.serve(normalizer, host=args.host, port=args.port, applications=apps, limits=limits,
                   model_path=args.model, log_level="info" if args.debug else "warning")
    return EXIT_OK
