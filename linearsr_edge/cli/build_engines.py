"""``linearsr-build-engines``: build a TensorRT bundle's engines on the device that runs them, and verify them.
The command line only: the work is the TensorRT family's (`linearsr_edge.backends.tensorrt.engines`).

Engines are specific to the GPU and the TensorRT release, so ``linearsr-export --target trt-fp16``
(or ``trt-int8``) writes the ONNX graphs and a recipe; this command, run on the Jetson or GPU
machine, builds every engine through TensorRT's Python API (strongly typed, the recipe's
optimization profiles, workspace and timing cache), records the TensorRT version, GPU and
compute capability in the manifest, re-runs the bundle's golden set on the engines and marks the
bundle verified. ``--print`` writes the equivalent ``trtexec`` lines instead (no TensorRT needed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from linearsr_edge.cli.common import run_cli, version_string

PROG = "linearsr-build-engines"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Build a trt-fp16 / trt-int8 bundle's TensorRT engines on this device, record the TensorRT "
        "version and GPU in its manifest, and verify the engines with the bundle's golden set.",
        epilog="example: linearsr-build-engines bundles/trt-fp16 --workspace 1024\n"
        "without linearsr-edge on the device: sh bundles/trt-fp16/build_engines.sh (trtexec; not verified)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--version", action="version", version=version_string(PROG))
    ap.add_argument("bundle", type=Path, help="a bundle folder written by linearsr-export --target trt-fp16|trt-int8")
    ap.add_argument("--workspace", type=int, metavar="MB", help="builder workspace in MiB (default: the recipe's)")
    ap.add_argument("--cuda-device", type=int, default=0, help="CUDA device index (default 0)")
    ap.add_argument("--print", action="store_true", help="print the recipe's trtexec lines and exit")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args), PROG)


def _run(args: argparse.Namespace) -> int:
    from linearsr_edge.bundle import Bundle
    from linearsr_edge.errors import ConfigError

    if args.workspace is not None and args.workspace < 64:
        raise ConfigError("--workspace must be at least 64 MiB")
    bundle = Bundle.load(args.bundle)
    recipe = bundle.manifest.family("tensorrt")
    if bundle.format != "tensorrt" or recipe is None:
        raise ConfigError(f"{bundle.path} is a {bundle.target} bundle; engines are built for trt-fp16 / trt-int8 only")
    if args.print:
        print(f"cd {bundle.path} && mkdir -p engines")
        print("\n".join(recipe.trtexec))
        return 0
    from linearsr_edge.backends.tensorrt.engines import build_engines
    from linearsr_edge.backends.tensorrt.options import TRTRuntimeOptions
    from linearsr_edge.pipeline.session import get_backend

    backend = get_backend("tensorrt").backend_class  # BackendUnavailableError names the extra where TensorRT is missing
    options = TRTRuntimeOptions(device=args.cuda_device)
    built = build_engines(bundle, backend, options, args.workspace, progress=not args.quiet)
    here = built.here
    print(built.report.table())
    print(
        f"built {len(recipe.components)} engines for {here.gpu} (compute {here.compute_capability}) with "
        f"TensorRT {here.tensorrt}; {bundle.path} is verified"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
