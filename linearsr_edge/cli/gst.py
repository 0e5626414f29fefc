"""``linearsr-gst``: tell GStreamer where the ``linearsr`` element is, and check that it loads.

eval "$(linearsr-gst env)"          # GST_PLUGIN_PATH and PYTHONPATH for this shell
linearsr-gst check                  # gst-inspect-1.0 linearsr, with what to install when it fails
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from linearsr_edge.cli.common import run_cli, version_string
from linearsr_edge.errors import BackendUnavailableError, ConfigError

PROG = "linearsr-gst"
SYSTEM_PYTHON = "/usr/bin/python3"  # the distribution's, whose PyGObject GStreamer's bindings need
DEBIAN = (
    "gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good python3-gst-1.0 "
    "gstreamer1.0-python3-plugin-loader"
)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="The linearsr GStreamer element: print the environment a pipeline needs to find it (env), or "
        "check that GStreamer loads it (check). GStreamer's Python plugin loader embeds the system Python 3, "
        f"which reaches this package through PYTHONPATH. Debian/Ubuntu: apt-get install {DEBIAN}",
    )
    ap.add_argument("--version", action="version", version=version_string(PROG))
    ap.add_argument(
        "command",
        choices=("env", "check", "run", "restream"),
        help="env: export lines for a shell; check: gst-inspect-1.0 linearsr; run CMD ...: a GStreamer command "
        "(gst-launch-1.0 ...) with the environment set for it alone; restream SOURCE --bundle B ...: an RTSP "
        "server of the source super-resolved (restream --help)",
    )
    ap.add_argument("argv", nargs=argparse.REMAINDER, help="run / restream: the command and its arguments")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args), PROG)


def _run(args: argparse.Namespace) -> int:
    from linearsr_edge.gst import environment, venv_free_path

    if args.command == "env":
        for name, value in environment(child=False).items():
            print(f"export {name}={shlex.quote(value)}")
        if venv_free_path() is not None:
            print(
                "# a virtual environment's python3 is on PATH, which the system Python GStreamer's plugin loader "
                "embeds would take for its own: deactivate it first, or run pipelines through `linearsr-gst run`"
            )
        return 0
    env = {**os.environ, **environment()}
    if args.command == "restream":  # in the system Python: PyGObject and GstRtspServer come from the OS
        python = SYSTEM_PYTHON if Path(SYSTEM_PYTHON).is_file() else shutil.which("python3", path=env.get("PATH"))
        if python is None:
            raise BackendUnavailableError("no system python3 on PATH for GStreamer's Python bindings")
        argv = [python, "-m", "linearsr_edge.gst.restream", *args.argv]
        return subprocess.run(argv, env=env, check=False).returncode
    if args.command == "run":
        if not args.argv:
            raise ConfigError("run: give the command, e.g. linearsr-gst run gst-launch-1.0 videotestsrc ! ...")
        if shutil.which(args.argv[0]) is None:
            raise BackendUnavailableError(f"{args.argv[0]} is not installed: apt-get install {DEBIAN}")
        return subprocess.run(args.argv, env=env, check=False).returncode
    if args.argv:
        raise ConfigError(f"{args.command} takes no arguments")
    inspect = shutil.which("gst-inspect-1.0")
    if inspect is None:
        raise BackendUnavailableError(f"gst-inspect-1.0 is not installed: apt-get install {DEBIAN}")
    done = subprocess.run([inspect, "linearsr"], env=env, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0 or "linearsr" not in done.stdout:
        python = subprocess.run([inspect, "python"], capture_output=True, text=True, timeout=60, check=False)
        why = (
            "GStreamer's Python plugin loader is missing: apt-get install gstreamer1.0-python3-plugin-loader "
            "python3-gst-1.0"
            if python.returncode != 0
            else (done.stderr.strip().splitlines() or ["no output"])[-1]
        )
        raise BackendUnavailableError(f"GStreamer does not load the linearsr element: {why}")
    sys.stdout.write(done.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
