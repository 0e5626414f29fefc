"""``linearsr-serve`` (a local Triton server on a bundle) and ``linearsr-triton`` (a Triton model repository).

``linearsr-triton BUNDLE --repo DIR`` writes a model repository that NVIDIA's Triton Inference Server
serves as is (Python backend: ``config.pbtxt`` + ``1/model.py``), for DeepStream's nvinferserver,
KServe v2 clients or Kubernetes. ``linearsr-serve BUNDLE`` writes it to a temporary folder and runs
the ``tritonserver`` of the nvidia-pytriton wheel on it, on 127.0.0.1 by default, until SIGINT or
SIGTERM; it prints the endpoints once the model has warmed up and the server is ready.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from linearsr_edge.cli.common import add_backend_flags, backend_options, run_cli, version_string
from linearsr_edge.options import given_flags, non_negative_int, positive_int
from linearsr_edge.pipeline.imaging import DEFAULT_MAX_OUTPUT_PIXELS


class _VersionAction(argparse.Action):
    """linearsr-triton's ``--version N``: the model version to write; ``--version`` alone: the program's."""

    def __call__(self, parser, namespace, value, option_string=None):
        if value is None:
            print(version_string(parser.prog))  # on stdout, as argparse's version action
            parser.exit()
        try:
            setattr(namespace, self.dest, positive_int(value))
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None


def _common(ap: argparse.ArgumentParser, bundle_required: bool = True) -> None:
    if ap.prog != "linearsr-triton":  # there --version N is the model version (alone, the program's)
        ap.add_argument("--version", action="version", version=version_string(ap.prog))
    ap.add_argument("bundle", type=Path, nargs=None if bundle_required else "?", help="bundle folder (linearsr-export)")
    ap.add_argument(
        "--max-pixels",
        type=positive_int,
        default=DEFAULT_MAX_OUTPUT_PIXELS,
        help=f"refuse requests whose output exceeds this many pixels (400; default {DEFAULT_MAX_OUTPUT_PIXELS:,}); "
        "frames above the bundle's profile are tiled",
    )
    ap.add_argument("--backend", default="auto", help="runtime backend inside the server (default: auto)")
    ap.add_argument("--instances", type=positive_int, default=1, help="model instances (Triton instance_group count)")
    ap.add_argument(
        "--max-queue-delay-us", type=int, default=2000, help="dynamic batching: wait this long to merge (2000)"
    )
    ap.add_argument(
        "--max-queue-size",
        type=non_negative_int,
        metavar="N",
        help="refuse a request (HTTP 503, gRPC UNAVAILABLE) when N wait already; 0: no limit (default: one full "
        "batch per instance, 8 per instance)",
    )
    ap.add_argument(
        "--queue-timeout-ms",
        type=non_negative_int,
        metavar="MS",
        help="refuse a request that waited MS in the queue (503 / UNAVAILABLE); 0: no limit (default: twice the "
        "time to serve a full queue and a batch, from one request at the bundle's optimal size measured here; "
        "size it for your frames when they are larger)",
    )
    add_backend_flags(ap)


def triton_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="linearsr-triton",
        description="Write a Triton Inference Server model repository serving a bundle (Python backend).",
        epilog="example: linearsr-triton bundles/onnx-int8 --repo models --copy-bundle\n"
        "then: docker run --rm -p8000:8000 -p8001:8001 -p8002:8002 -v $PWD/models:/models "
        "nvcr.io/nvidia/tritonserver:<yy.mm>-py3 tritonserver --model-repository=/models",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(ap)
    ap.add_argument("--repo", type=Path, required=True, help="repository folder to write (created if missing)")
    ap.add_argument("--kind", choices=("KIND_CPU", "KIND_GPU"), default="KIND_CPU", help="instance kind")
    ap.add_argument(
        "--copy-bundle",
        action="store_true",
        help="copy the bundle into the repository and name no path of this machine: the repository can move "
        "(into a container, to another host); else the bundle is referenced by absolute path",
    )
    ap.add_argument(
        "--perf-data",
        type=Path,
        metavar="FILE",
        help="also write perf_analyzer's --input-data JSON (a demo frame, a tag of the bundle) and print the "
        "perf_analyzer command",
    )
    ap.add_argument(
        "--version",
        dest="model_version",
        action=_VersionAction,
        nargs="?",
        default=1,
        metavar="N",
        help="write the bundle as model version N (default 1; alone: print the program's version); the newest "
        "version is served: with version N+1 written into a repository that linearsr-serve --repo serves, a "
        "model-control load call (or SIGHUP to linearsr-serve) takes it live without dropping a request",
    )
    ap.add_argument("--perf-size", default="160x90", metavar="WxH", help="--perf-data: the frame size (default 160x90)")
    return ap


def serve_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="linearsr-serve",
        description="Serve a bundle (or a repository written by linearsr-triton) with Triton Inference Server "
        "(KServe v2 over HTTP and gRPC) until Ctrl-C.",
        epilog="examples: linearsr-serve bundles/onnx-int8 --port 8000 --instances 2\n"
        "          linearsr-serve --repo models   (a repository from linearsr-triton, served as it is)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(ap, bundle_required=False)
    ap.add_argument(
        "--repo", type=Path, help="serve this repository (linearsr-triton --repo DIR) instead of a bundle, as it is"
    )
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    ap.add_argument(
        "--admin-key",
        help="the key (header linearsr-admin-key) that opens model control, shared memory, logging and trace "
        "(inference stays open); without one a random key is made and printed (default: $LINEARSR_SERVE_ADMIN_KEY)",
    )
    ap.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    ap.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default 8001)")
    ap.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port (default 8002)")
    ap.add_argument("--log", type=Path, help="append tritonserver's log to this file")
    ap.add_argument("--startup-timeout", type=float, default=180.0, help="seconds to wait for readiness")
    return ap


def _options(args, given):
    from linearsr_edge.bundle import Bundle
    from linearsr_edge.pipeline.session import choose_backend

    bundle = Bundle.load(args.bundle)
    info = choose_backend(bundle.format, args.backend)
    return info.name, backend_options(info, args, given)


def _queue_policy(args, backend, options):
    """The queue policy the flags ask for; what they leave out is sized from one request measured here."""
    from linearsr_edge.serving.triton import queue_policy

    timeout_us = None if args.queue_timeout_ms is None else args.queue_timeout_ms * 1000
    policy, line = queue_policy(args.bundle, args.instances, backend, options, args.max_queue_size, timeout_us)
    print(line, flush=True)
    return policy


def triton_main(argv: list[str] | None = None) -> int:
    parser = triton_parser()
    args = parser.parse_args(argv)

    def body() -> int:
        from linearsr_edge.bundle import Bundle
        from linearsr_edge.serving.triton import MODEL, max_input_bytes, write_repository

        backend, options = _options(args, given_flags(parser, args))
        queue = _queue_policy(args, backend, options)
        model = write_repository(
            args.bundle, args.repo, backend, options, args.max_queue_delay_us, args.instances, args.kind,
            copy_bundle=args.copy_bundle, max_pixels=args.max_pixels, queue=queue, version=args.model_version,
        )  # fmt: skip
        print(f"wrote {model / str(args.model_version)} (Triton Python backend, {backend})")
        bound = max_input_bytes(args.max_pixels, Bundle.load(args.bundle).cfg.upscale)
        print(
            f"serve it with: tritonserver --model-repository={args.repo} --http-max-input-size={bound} "
            f"--model-control-mode=explicit --load-model={MODEL}\n"
            f"  or: linearsr-serve --repo {args.repo}   (a newer version goes live with SIGHUP to it, or a "
            f"POST to /v2/repository/models/{MODEL}/load with its admin key)"
        )
        if args.perf_data is not None:
            from linearsr_edge.serving.perfdata import perf_analyzer_command, write_perf_data
            from linearsr_edge.specs import parse_resolution

            h, w = parse_resolution(args.perf_size)
            data = write_perf_data(Bundle.load(args.bundle), args.perf_data, w, h)
            print(f"wrote {data} ({w}x{h} frame); load it with:\n  {perf_analyzer_command(data)}")
        return 0

    return run_cli(body, "linearsr-triton")


def serve_main(argv: list[str] | None = None) -> int:
    parser = serve_parser()
    args = parser.parse_args(argv)

    def body() -> int:
        from linearsr_edge.errors import ConfigError
        from linearsr_edge.serving.triton import ADMIN_HEADER, GRPC_ADMIN_HEADER, TritonServer

        given = given_flags(parser, args)
        if (args.bundle is None) == (args.repo is None):
            raise ConfigError("give a bundle to serve, or --repo DIR (a repository from linearsr-triton)")
        queue = None
        if args.repo is not None:
            fixed = [f for f in given if f not in ("--max-pixels",)]
            if fixed:
                raise ConfigError(f"{', '.join(fixed)}: a repository is served as written; set it in linearsr-triton")
            backend, options = "as written in the repository", None
        else:
            backend, options = _options(args, given)
            queue = _queue_policy(args, backend, options)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"linearsr-serve: warning: binding {args.host}: reachable from other machines", file=sys.stderr)
        server = TritonServer(
            args.bundle, args.host, args.port, args.grpc_port, args.metrics_port, args.instances, backend, options,
            args.max_queue_delay_us, args.log, repo=args.repo, max_pixels=args.max_pixels,
            admin_key=args.admin_key or os.environ.get("LINEARSR_SERVE_ADMIN_KEY") or None, queue=queue,
            notify=lambda message: print(f"linearsr-serve: {message}", file=sys.stderr, flush=True),
        )  # fmt: skip
        stop, reload = threading.Event(), threading.Event()
        previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: reload.set())
        try:
            server.start(timeout=args.startup_timeout)
            print(
                f"serving {args.bundle or args.repo} as model 'linearsr' ({backend}, {args.instances} instance(s)):\n"
                f"  HTTP    http://{server.http_url}/v2/models/linearsr/infer\n"
                f"  gRPC    {server.grpc_url}\n"
                f"  metrics http://{args.host}:{args.metrics_port}/metrics\n"
                f"  ready   http://{server.http_url}/v2/health/ready\n"
                f"  admin   model control, shared memory, logging and trace need the header "
                f"{ADMIN_HEADER}: {server.admin_key} (gRPC: {GRPC_ADMIN_HEADER})\n"
                "SIGHUP loads the newest model version of the repository; Ctrl-C or SIGTERM stops it.",
                flush=True,
            )
            while not stop.wait(0.5):
                if server.process.poll() is not None:
                    print(f"linearsr-serve: tritonserver exited with code {server.process.returncode}", flush=True)
                    return 1
                if reload.is_set():
                    reload.clear()
                    _reload(server)
        finally:
            server.stop()
            for s, handler in previous.items():
                signal.signal(s, handler)
        print("stopped", flush=True)
        return 0

    return run_cli(body, "linearsr-serve")


def _reload(server) -> None:
    """SIGHUP: load the model again; the newest version of the repository goes live."""
    from linearsr_edge.serving.triton import ServeError, versions

    try:
        server.load_model()
    except ServeError as exc:
        print(f"linearsr-serve: loading the model failed, the loaded version serves on: {exc}", file=sys.stderr)
        return
    newest = versions(server.repo)[-1:] if server.repo is not None else [1]
    print(f"linearsr-serve: model loaded; version {newest[0] if newest else '?'} serves", flush=True)


if __name__ == "__main__":
    raise SystemExit(serve_main())
