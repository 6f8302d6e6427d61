"""``normface serve``: the HTTP API and the web page from one process (normface.serving.http_api).

The address is bound before the model loads, so a port in use (or a host that cannot be bound)
is a usage error (exit 2) named in one line, before anything else is printed; a start-up that
fails after that exits 1. A --host other than a loopback address prints a warning on stderr."""

from __future__ import annotations

import argparse
import errno
import os
import sys

from normface.cli.common import (EXIT_OK, CommandError, UsageError, add_model_option, check_model_arg,
                                 load_normalizer, missing_tensorflow, os_text, port, positive_float, positive_int,
                                 quiet_tensorflow, tensorflow_installed)

NAME = "serve"
HELP = "serve the HTTP API (/v1/normalize, /v1/adjust, /v1/avatar, /docs) and the web page (/) from one process"


def host_list(text: str) -> list[str]:
    hosts = [h.strip() for h in text.split(",") if h.strip()]
    if not hosts:
        raise argparse.ArgumentTypeError("expected host names separated by commas, e.g. localhost,faces.example.org")
    return hosts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1, this machine only; put a reverse proxy with TLS, "
                             "authentication and rate limits in front before exposing it, see docs/serving.md)")
    parser.add_argument("--port", type=port, default=8000, help="TCP port (default 8000)")
    parser.add_argument("--allowed-hosts", type=host_list, default=None, metavar="NAMES",
                        help="Host header values served, comma-separated (default: localhost, 127.0.0.1, [::1] "
                             "and --host); other names get 400 (DNS rebinding); '*' serves any")
    add_model_option(parser)
    parser.add_argument("--max-files", type=positive_int, default=8, help="photos per request (default 8)")
    parser.add_argument("--max-file-mb", type=positive_float, default=20.0, help="megabytes per photo (default 20)")
    parser.add_argument("--max-megapixels", type=positive_float, default=25.0,
                        help="pixels per photo, read from its header before decoding (default 25)")
    parser.add_argument("--queue", type=positive_int, default=64,
                        help="photos the server holds at once (waiting for a decode thread, decoding, waiting for "
                             "the network) before requests get 503 with Retry-After (default 64; at least "
                             "--max-files)")
    parser.add_argument("--batch-size", type=positive_int, default=16,
                        help="most faces per network call (default 16)")
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="threads that decode and align photos (default: the cores, at most 4)")
    parser.add_argument("--network-threads", type=positive_int, default=min(os.cpu_count() or 1, 4),
                        help="threads of the networks (LiteRT's interpreters), which run one batch at a time "
                             "(default: the cores, at most 4)")
    parser.add_argument("--timeout", type=positive_float, default=60.0,
                        help="seconds a request may take before it gets 504 (default 60)")
    parser.add_argument("--body-timeout", type=positive_float, default=60.0,
                        help="seconds a request's body may take to arrive before it gets 408 (default 60)")
    parser.add_argument("--max-connections", type=positive_int, default=64,
                        help="open connections before new ones get 503 (default 64)")


def applications(debug: bool):
    """The server's applications: the white balance always; the avatar when TensorFlow (its fit)
    is installed and the Surrey model found, else the reason it is missing (for the console).
    The avatar's module, which imports TensorFlow, loads on the first avatar request: a server on
    LiteRT starts without TensorFlow's import (seconds, and its memory)."""
    from normface.apps import adjust
    from normface.faces import face3d
    from normface.serving import http_api

    if not tensorflow_installed():
        return http_api.Applications(adjust=adjust.adjust_with_result, avatar=None,
                                     avatar_missing=missing_tensorflow("the avatar (its 3-D fit)"))

    def avatar_bytes(image, landmarks, fmt: str) -> bytes:
        quiet_tensorflow(debug)  # imports it once (the LiteRT path has not), its log lines hidden
        from normface.apps import avatar

        return avatar.avatar_bytes(image, landmarks, fmt)

    return http_api.Applications(adjust=adjust.adjust_with_result, avatar=avatar_bytes,
                                 avatar_missing=face3d.surrey_model_missing())


def run(args: argparse.Namespace) -> int:
    check_model_arg(args.model)
    from normface.serving import http_api

    if args.queue < args.max_files:
        raise UsageError(f"--queue {args.queue}: must hold one request's photos (--max-files {args.max_files})")
    options = dict(max_files=args.max_files, max_file_bytes=int(args.max_file_mb * 1024 * 1024),
                   max_pixels=int(args.max_megapixels * 1_000_000), max_queue=args.queue, max_batch=args.batch_size,
                   timeout_s=args.timeout, body_timeout_s=args.body_timeout, max_connections=args.max_connections)
    if args.workers is not None:
        options["workers"] = args.workers
    limits = http_api.Limits(**options)
    allowed = args.allowed_hosts or http_api.allowed_hosts_for(args.host)
    try:
        sock = http_api.bind(args.host, args.port)
    except OSError as err:
        raise UsageError(f"--host {args.host} --port {args.port}: cannot listen there: {os_text(err)}"
                         + ("; another program is listening on that port: choose another --port"
                            if err.errno == errno.EADDRINUSE else "")) from err
    try:
        if not http_api.is_loopback(args.host):
            print(f"normface serve: warning: --host {args.host} accepts connections from other machines; the "
                  "server has no authentication, TLS or rate limits: put a reverse proxy in front "
                  f"(docs/serving.md, 'Before exposing it'); Host names served: {', '.join(allowed)} "
                  "(--allowed-hosts)", file=sys.stderr, flush=True)
        normalizer = load_normalizer(args)
        apps = applications(args.debug)
        shown = f"[{args.host}]" if ":" in args.host else args.host
        where = f"http://{shown}:{args.port}/"
        print(f"normface: serving {where} (the page), {where}docs (the API); Ctrl-C stops"
              + (f"\nnormface: no avatar: {apps.avatar_missing}" if apps.avatar_missing else ""), flush=True)
        http_api.serve(normalizer, host=args.host, port=args.port, applications=apps, limits=limits,
                       model_path=args.model, log_level="info" if args.debug else "warning",
                       allowed_hosts=allowed, sock=sock)
    except http_api.StartupFailed as err:
        raise CommandError(str(err)) from err
    finally:
        sock.close()
    return EXIT_OK
