"""What every command shares: logging setup, third-party noise, and turning errors into exit codes."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable
from typing import NoReturn

from linearsr_edge import interrupt
from linearsr_edge.errors import LinearSRError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def version_string(prog: str) -> str:
    from linearsr_edge import __version__

    return f"{prog} (linearsr-edge) {__version__}"


def setup_logging(verbose: bool = False) -> None:
    """Our messages on stderr; third-party warnings and log lines only with ``--verbose``."""
    pkg = logging.getLogger("linearsr_edge")
    if not pkg.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        pkg.addHandler(handler)
    pkg.setLevel(logging.DEBUG if verbose else logging.INFO)
    pkg.propagate = False
    if not verbose:
        quiet_third_party()


def quiet_third_party() -> None:
    """Silence third-party warnings and log lines. Call again after importing torch: its logging
    setup, run at import, resets the levels of its own loggers."""
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)  # third parties log warnings through the root logger
    for name in ("torch", "torch.onnx", "onnxscript", "onnx_ir", "onnxruntime", "onnxslim", "nncf", "coremltools"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run_cli(body: Callable[[], int], prog: str, verbose: bool = False) -> int:
    """Run a command body; a user error prints one line on stderr and exits non-zero, never a traceback."""
    setup_logging(verbose)
    interrupt.install()
    try:
        return body()
    except LinearSRError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except MemoryError:
        print(f"{prog}: error: out of memory; try a smaller input or fewer pixels", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def add_backend_flags(parser: argparse.ArgumentParser, note: str = "", skip: tuple[str, ...] = ()) -> None:
    """Every registered backend's option flags, one group per backend (the shared ones first); ``skip``:
    flags the command defines itself."""
    from linearsr_edge.options import add_flags, flags_of
    from linearsr_edge.pipeline.session import BACKENDS, BackendOptions

    seen: set[str] = set(skip)
    add_flags(parser.add_argument_group(f"backend options ({note}every backend)"), BackendOptions, seen)
    for info in sorted(BACKENDS.entries(), key=lambda b: b.name):
        if set(flags_of(info.options)) - seen:
            add_flags(
                parser.add_argument_group(f"{info.name} backend options{f' ({note[:-2]})' if note else ''}"),
                info.options,
                seen,
            )


def backend_options(info, args: argparse.Namespace, given: list[str]):
    """``info``'s typed options from the flags given, refusing any flag that belongs to another backend."""
    from linearsr_edge.options import flags_of, from_flags, refuse_flags

    refuse_flags(given, flags_of(info.options), f"backend {info.name}")
    return from_flags(info.options, vars(args))


def exit_without_teardown(code: int) -> NoReturn:
    """End a finished one-shot command without tearing down what it loaded. Closing a runtime frees every
    compiled model (OpenVINO: 0.11 s for the demo's six), then the interpreter tears down the rest: 0.15 s of a
    1.6 s ``linearsr-upscale`` run, which the OS does anyway. The atexit hooks still run (temporary folders are
    removed, logs flushed) and stdout/stderr are flushed; then the process ends with ``code``."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing left to say
            stream.flush()
    os._exit(code)


def console(main: Callable[[], int]) -> NoReturn:
    """A console script's entry: ``main()``, then `exit_without_teardown` (argparse's own exits, ``--help`` and
    usage errors, leave as usual). ``main`` itself returns, so that tests and callers keep their process."""
    exit_without_teardown(main())
