"""What every command shares: logging setup and turning errors into messages and exit codes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from linearsr_edge.errors import LinearSRError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def run_cli(body: Callable[[], int], prog: str) -> int:
    """Run a command body; a user error prints one line on stderr and exits non-zero, never a traceback."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    pkg = logging.getLogger("linearsr_edge")
    if not pkg.handlers:
        pkg.addHandler(handler)
    pkg.setLevel(logging.INFO)
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
