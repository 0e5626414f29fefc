"""What every command shares: logging setup, third-party noise, and turning errors into exit codes."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable

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
