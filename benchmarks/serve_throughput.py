#!/usr/bin/env python
"""Frames per second at 1, 2 and 4 concurrent streams: through `linearsr-serve`'s Triton server (HTTP,
one model instance, dynamic batching) against the same bundle in process, measured in one run.

    python -m benchmarks.serve_throughput --bundle /tmp/prof/onnx-fp32 [--size 128] [--frames 8]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from linearsr_edge.demo import SAMPLES_DIR
from linearsr_edge.machine import machine_line
from linearsr_edge.pipeline.imaging import read_image
from linearsr_edge.profiling import fit_frame
from linearsr_edge.runtime import SRRuntime
from linearsr_edge.serving.triton import TritonServer


def run_streams(n: int, frames: int, call) -> float:
    """frames/s of ``n`` threads each sending ``frames`` requests one after another."""

    def stream(k: int) -> None:
        for _ in range(frames):
            call(k)

    threads = [threading.Thread(target=stream, args=(k,)) for k in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return n * frames / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    import tritonclient.http as http

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--size", type=int, default=128, help="input frame side (default 128)")
    ap.add_argument("--frames", type=int, default=8, help="requests per stream (default 8)")
    ap.add_argument("--port", type=int, default=18500)
    args = ap.parse_args(argv)
    frame = fit_frame(read_image(SAMPLES_DIR / "coffee_lr.png"), args.size, args.size)
    log = Path(tempfile.mkdtemp()) / "triton.log"
    rows = []
    with (
        TritonServer(
            args.bundle, http_port=args.port, grpc_port=args.port + 1, metrics_port=args.port + 2, log=log
        ) as server,
        SRRuntime.load(args.bundle) as runtime,
    ):
        local_clients = threading.local()  # the HTTP client is gevent-based: one per thread

        def served(k: int) -> None:
            if not hasattr(local_clients, "client"):
                local_clients.client = http.InferenceServerClient(server.http_url)
            inp = http.InferInput("image", [1, *frame.shape], "UINT8")
            inp.set_data_from_numpy(frame[None], binary_data=True)
            out = http.InferRequestedOutput("image", binary_data=True)
            local_clients.client.infer("linearsr", [inp], outputs=[out]).as_numpy("image")

        def local(k: int) -> None:
            runtime.upscale(frame)

        served(0)
        local(0)
        for n in (1, 2, 4):
            rows.append((n, run_streams(n, args.frames, local), run_streams(n, args.frames, served)))
        stats = http.InferenceServerClient(server.http_url).get_inference_statistics("linearsr")["model_stats"][0]
    print(f"{args.bundle} at {args.size}x{args.size}, {args.frames} requests per stream; {machine_line()}")
    print("| streams | in process fps | served fps | serving overhead |\n|---:|---:|---:|---:|")
    for n, local_fps, served_fps in rows:
        print(f"| {n} | {local_fps:.2f} | {served_fps:.2f} | {100 * (1 - served_fps / local_fps):+.1f} % |")
    print(f"server: {stats['inference_count']} inferences in {stats['execution_count']} executions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
