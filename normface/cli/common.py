"""What every subcommand shares: exit codes and their help text, the two error kinds, option
types, the checks made before the model loads, ``--report`` lines, quiet TensorFlow and the
model loader."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_HELP = """exit status:
  0  every input produced its outputs, or failed on its own with a reason on stderr (no face,
     unreadable file, ...); with --strict such a failure gives 1
  1  nothing was produced, an output could not be written, or the job failed (e.g. the model
     file is corrupt)
  2  usage error: a bad option value, an unusable output path, or for serve an address that
     cannot be bound (a port in use); all checked before the model loads
errors are one line each, naming the file; --debug adds tracebacks and TensorFlow's log lines"""
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
MODEL_HELP = "export folder or .keras file (default: the shipped model)"


class UsageError(Exception):
    """A bad argument (exit 2); the message names it."""


class CommandError(Exception):
    """The job cannot go on (exit 1); the message names the file and the reason."""


class Terminated(BaseException):
    """SIGTERM: unwinds like Ctrl-C, so the temporary file being written is removed."""


# --- option types -------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port 1-65535, got {value}")
    return value


def add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help=MODEL_HELP)


def os_text(err: OSError) -> str:
    from normface.utils import io_utils

    return io_utils.os_error_text(err)


def one_line(text) -> str:
    """An error message as one line: control characters in it (a newline in a file name) escaped."""
    from normface.serving.batch_files import one_line as escape

    return escape(str(text))


# --- checks before the model loads ------------------------------------------------------------


def check_model_arg(model: str | None) -> None:
    if model is not None and not Path(model).exists():
        raise UsageError(f"--model {model}: no such file or folder")


def check_output_arg(path: Path, flag: str, folder: bool) -> None:
    from normface.utils import io_utils

    reason = io_utils.unwritable_reason(path, folder=folder)
    if reason:
        raise UsageError(f"{flag} {path}: cannot write there: {reason}")


def make_output_folder(path: Path) -> None:
    """Creates the output folder and checks a file can be created in it (exit 1 otherwise)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise CommandError(f"cannot write into the output folder {path}: {os_text(err)}") from err


def print_problems(problems) -> None:
    """The inputs that could not be listed or read, one line each on stderr."""
    for p in problems:
        print(f"normface: {p}", file=sys.stderr)


class Report:
    """``--report``: one JSON line per input, appended; a failed write is reported once."""

    def __init__(self, path: str | None):
        self.path = Path(path) if path else None
        self.file = None
        self.failed = False

    def check(self) -> None:
        if self.path is not None:
            check_output_arg(self.path, "--report", folder=False)

    def open(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "a")
        except OSError as err:
            raise UsageError(f"--report {self.path}: cannot open it: {os_text(err)}") from err

    def __call__(self, line: dict) -> None:
        import json

        if self.file is None or self.failed:
            return
        try:
            self.file.write(json.dumps(line) + "\n")
            self.file.flush()
        except OSError as err:
            self.failed = True
            print(f"normface: cannot write the report {self.path}: {os_text(err)}; no more report lines",
                  file=sys.stderr)

    def close(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()  # a failed flush was reported already
            self.file = None


# --- TensorFlow and the model -----------------------------------------------------------------


# What installs TensorFlow: `pip install normface` runs the shipped model on LiteRT without it (issue 31).
TRAIN_EXTRA = "pip install 'normface[train]'"


def tensorflow_installed() -> bool:
    import importlib.util

    if sys.modules.get("tensorflow") is not None:
        return True
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # an import hook refusing it, a broken entry in sys.modules
        return False


def missing_tensorflow(needed_for: str) -> str:
    """The one line saying TensorFlow is missing and which extra installs it."""
    return f"{needed_for} needs TensorFlow, which is not installed: {TRAIN_EXTRA} (the train extra)"


def quiet_tensorflow(debug: bool, needed_for: str = "this command") -> None:
    """Imports TensorFlow with its log lines hidden (unless ``debug``): the C++ lines TensorFlow
    prints while it loads and probes devices go to a buffer, printed only if the import fails.
    CommandError naming the train extra (:func:`missing_tensorflow`) when it is not installed."""
    if not tensorflow_installed():
        raise CommandError(missing_tensorflow(needed_for))
    if debug:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings

    warnings.filterwarnings("ignore")  # Keras' and TensorFlow's Python warnings (shown with --debug)
    if "tensorflow" in sys.modules:
        return
    from normface.utils.quiet import hidden_native_stderr

    with hidden_native_stderr():
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        tf.config.list_physical_devices()  # the device probe logs too


# The one line a model LiteRT cannot run prints before it runs on TensorFlow (issue 31).
FALLBACK_NOTICE = "normface: running on TensorFlow (slower to start): "


def model_backend(args) -> tuple[str, str | None]:
    """What :func:`load_model` runs ``--model`` on, found without loading it: ``("litert", None)``,
    ``("tensorflow", None)`` (``--device gpu``, ``$NORMFACE_BACKEND=tensorflow``) or
    ``("tensorflow", reason)`` when the automatic choice falls back (the notice's reason).
    CommandError for a bad ``$NORMFACE_BACKEND`` or a model ``litert`` cannot run."""
    from normface.serving import litert_backend
    from normface.serving.normalizer import resolve_model_path

    backend = "tensorflow" if getattr(args, "device", "cpu") == "gpu" else os.environ.get("NORMFACE_BACKEND", "auto")
    if backend not in litert_backend.BACKENDS:
        raise CommandError(f"NORMFACE_BACKEND: expected one of {', '.join(litert_backend.BACKENDS)}, got {backend!r}")
    if backend == "tensorflow":
        return backend, None
    try:
        path = resolve_model_path(args.model)
        if backend == "litert":
            return litert_backend.choose_backend(path, backend), None  # ValueError: why not
        reason = litert_backend.litert_unavailable(path)
    except (OSError, ValueError) as err:
        raise CommandError(f"cannot load the model: {os_text(err) if isinstance(err, OSError) else err}") from err
    return ("tensorflow", reason) if reason is not None else ("litert", None)


def load_model(args, choose: str = "largest"):
    """The normalizer of ``--model`` (default: the shipped one): on LiteRT when the model has its
    files (no TensorFlow imported), else on TensorFlow, quieted first, with a one-line notice;
    ``--device gpu`` always on TensorFlow; ``$NORMFACE_BACKEND`` (auto, litert, tensorflow) chooses
    otherwise (benchmarks compare the two). :func:`model_backend` says which, before loading.
    ``args.network_threads`` (when the subcommand has it): LiteRT's interpreter threads."""
    from normface.serving.normalizer import FaceNormalizer

    backend, reason = model_backend(args)
    if backend == "tensorflow":
        why = reason or ("--device gpu" if getattr(args, "device", "cpu") == "gpu" else "NORMFACE_BACKEND=tensorflow")
        quiet_tensorflow(args.debug, f"running the model on TensorFlow ({why})")
    try:
        normalizer = FaceNormalizer.from_pretrained(args.model, choose=choose, backend=backend,
                                                    threads=getattr(args, "network_threads", None))
    except (OSError, ValueError) as err:
        raise CommandError(f"cannot load the model: {os_text(err) if isinstance(err, OSError) else err}") from err
    if reason is not None:  # after the load, so a model that fails to load gets its one error line only
        print(f"{FALLBACK_NOTICE}{reason}", file=sys.stderr)
    return normalizer


def load_normalizer(args, choose: str = "largest"):
    """What the subcommands call: :func:`load_model` through ``normface.cli._load_normalizer``,
    looked up at call time, so a test (or an embedding program) can hand in a loaded model."""
    import normface.cli

    return normface.cli._load_normalizer(args, choose)
