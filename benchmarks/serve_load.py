#!/usr/bin/env python
"""Serving that holds, measured on this machine against `linearsr-serve`'s Triton server on 127.0.0.1.

    python -m benchmarks.serve_load sweep    --bundles B1 B2 [--perf-analyzer PATH]
    python -m benchmarks.serve_load overload --bundle B [--seconds 180]
    python -m benchmarks.serve_load crash    --bundle B [--seconds 40]
    python -m benchmarks.serve_load swap     --bundle B --new-bundle B2 [--seconds 30]
    python -m benchmarks.serve_load fuzz     --bundle B [--requests 600]
    python -m benchmarks.serve_load body     --bundle B [--mib 16 64 256]

``sweep`` drives NVIDIA's ``perf_analyzer`` (tritonclient 2.41.0's binary: see the README) at concurrency 1, 2,
4, 8 and 16, frames 64x64 and 160x90 (``linearsr-triton --perf-data``'s request), and reads the dynamic
batcher's executions per inference and the failures from the server's metrics endpoint. The others drive
`linearsr_edge.serving.loadgen` (a timeline of every reply, which perf_analyzer does not give): open-loop
load at twice the sustainable rate with the server's RSS sampled; SIGKILL to the model's stub under load;
version 2 written and loaded under load; the fuzzer. Every server is the one ``linearsr-serve BUNDLE`` starts
(its queue policy sized from one request measured here), every run bounded, every server stopped. The
tests run the fast variants (``tests/e2e/test_serve_holds.py``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from linearsr_edge.bundle import Bundle
from linearsr_edge.machine import machine_line
from linearsr_edge.serving import loadgen
from linearsr_edge.serving.perfdata import demo_frame, write_perf_data
from linearsr_edge.serving.triton import MAX_BATCH, TritonServer, queue_policy, write_repository

SIZES = ((64, 64), (160, 90))  # (width, height)
CONCURRENCY = (1, 2, 4, 8, 16)


def server_for(bundle: Path | None, repo: Path | None = None, log: Path | None = None, **kw) -> TritonServer:
    """The server ``linearsr-serve`` starts: for a bundle, its queue policy sized from one request measured here."""
    if bundle is not None and "queue" not in kw:
        kw["queue"], line = queue_policy(bundle, kw.get("instances", 1))
        print(f"  {line}", flush=True)
    http_port, grpc_port, metrics_port = loadgen.free_ports(3)
    return TritonServer(bundle, "127.0.0.1", http_port, grpc_port, metrics_port, repo=repo, log=log, **kw)


def metrics(server: TritonServer) -> dict[str, float]:
    """Triton's counters for the model, summed over versions: inferences, executions, failures."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out = {"inferences": 0.0, "executions": 0.0, "failures": 0.0, "refused": 0.0}
    names = {"nv_inference_count": "inferences", "nv_inference_exec_count": "executions",
             "nv_inference_request_failure": "failures"}  # fmt: skip
    for line in text.splitlines():
        found = re.match(r"^(\w+)\{([^}]*)\} ([0-9.e+]+)$", line)
        if not found or 'model="linearsr"' not in found.group(2):
            continue
        if found.group(1) in names:
            out[names[found.group(1)]] += float(found.group(3))
        if found.group(1) == "linearsr_request_failure":
            out["refused"] += float(found.group(3))
    return out


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in after}


# -- sweep ------------------------------------------------------------------------------------------
def perf_analyzer_run(pa: str, server: TritonServer, data: Path, concurrency: int, timeout: float) -> dict:
    out = Path(tempfile.mkdtemp()) / "pa.csv"
    cmd = [pa, "-m", "linearsr", "-i", "grpc", "-u", server.grpc_url, "--input-data", str(data),
           "--concurrency-range", str(concurrency), "--measurement-interval", "6000", "--stability-percentage",
           "50", "--max-trials", "6", "-f", str(out)]  # fmt: skip
    before = metrics(server)
    t0 = time.monotonic()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout)
        code, text = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        code, text = 124, "timed out"
    counted = delta(metrics(server), before)
    row = {"concurrency": concurrency, "exit": code, "seconds": round(time.monotonic() - t0, 1), **counted}
    row["executions_per_inference"] = counted["executions"] / counted["inferences"] if counted["inferences"] else None
    if out.is_file():
        with out.open() as f:
            record = next(csv.DictReader(f), None)
        if record:
            row["throughput"] = float(record["Inferences/Second"])
            for p in ("p50", "p95", "p99"):
                row[f"{p}_ms"] = float(record[f"{p} latency"]) / 1000
    if code != 0:
        errors = [ln for ln in text.splitlines() if "error" in ln.lower() or "fail" in ln.lower()]
        last = errors[-1] if errors else (text.strip().splitlines() or ["?"])[-1]
        row["perf_analyzer"] = last.strip()[:200]
    shutil.rmtree(out.parent, ignore_errors=True)
    return row


def sweep(args) -> dict:
    pa = args.perf_analyzer or shutil.which("perf_analyzer")
    if not pa:
        raise SystemExit("perf_analyzer not found: give --perf-analyzer PATH (README, 'Serving')")
    results = {}
    for bundle_path in args.bundles:
        bundle = Bundle.load(bundle_path)
        name = Path(bundle_path).name
        print(f"{name}:", flush=True)
        with server_for(Path(bundle_path), log=args.log) as server, tempfile.TemporaryDirectory() as tmp:
            for w, h in SIZES:
                data = write_perf_data(bundle, Path(tmp) / f"{w}x{h}.json", w, h)
                for c in args.concurrency:
                    row = perf_analyzer_run(pa, server, data, c, args.timeout)
                    results.setdefault(name, {}).setdefault(f"{w}x{h}", []).append(row)
                    print(f"  {w}x{h} " + _row(row), flush=True)
    return results


def _row(row: dict) -> str:
    epi = row.get("executions_per_inference")
    cells = [f"c={row['concurrency']}", f"{row.get('throughput', float('nan')):.2f} infer/s"]
    cells += [f"p{p} {row.get(f'p{p}_ms', float('nan')):.0f} ms" for p in (50, 95, 99)]
    cells += [f"errors {int(row['failures'])}", f"exec/infer {epi:.2f}" if epi else "exec/infer -"]
    if "perf_analyzer" in row:
        cells.append(f"[perf_analyzer exit {row['exit']}: {row['perf_analyzer']}]")
    return " | ".join(cells)


# -- overload ---------------------------------------------------------------------------------------
def overload(args) -> dict:
    image = demo_frame(64, 64)
    with server_for(args.bundle, log=args.log) as server:
        unloaded = loadgen.closed_loop(server.http_url, image, 1, 15, 10_000)
        sustained = loadgen.closed_loop(server.http_url, image, MAX_BATCH, 25, 100_000)
        rate = sum(r.ok for r in sustained) / (sustained[-1].done - sustained[0].sent)
        print(f"  sustainable (closed loop, {MAX_BATCH} clients): {rate:.2f} req/s; offering {2 * rate:.2f} req/s "
              f"for {args.seconds:.0f} s", flush=True)  # fmt: skip
        before = metrics(server)
        with loadgen.RssSampler(server.process.pid, every=2.0) as rss:
            replies = loadgen.open_loop(server.http_url, image, 2 * rate, args.seconds, max_in_flight=128)
        counted = delta(metrics(server), before)
        after = loadgen.closed_loop(server.http_url, image, 1, 15, 5)
    admitted = [r.latency for r in replies if r.ok]
    samples = rss.samples
    base = samples[min(2, len(samples) - 1)][1]  # after the first seconds of the run
    result = {
        "rate_offered": 2 * rate, "rate_sustainable": rate, "seconds": args.seconds, "counts": loadgen.counts(replies),
        "messages": sorted({r.message.split("] ")[-1] for r in replies if not r.ok}),
        "unloaded_p50_ms": _ms(loadgen.percentile([r.latency for r in unloaded], 50)),
        "unloaded_p99_ms": _ms(loadgen.percentile([r.latency for r in unloaded], 99)),
        "sustained_p99_ms": _ms(loadgen.percentile([r.latency for r in sustained if r.ok], 99)),
        "admitted_p50_ms": _ms(loadgen.percentile(admitted, 50)),
        "admitted_p99_ms": _ms(loadgen.percentile(admitted, 99)),
        "admitted_p99_over_unloaded": loadgen.percentile(admitted, 99) / loadgen.percentile(
            [r.latency for r in unloaded], 99),
        "admitted_p99_over_sustained": loadgen.percentile(admitted, 99) / loadgen.percentile(
            [r.latency for r in sustained if r.ok], 99),
        "rss_mib": [(round(t), round(b / 2**20)) for t, b in samples],
        "rss_growth_pct": 100 * (samples[-1][1] - base) / base,
        "server_counts": counted, "after": loadgen.counts(after),
    }  # fmt: skip
    return result


# -- crash ------------------------------------------------------------------------------------------
def crash(args) -> dict:
    image = demo_frame(64, 64)
    events = []
    server = server_for(args.bundle, log=args.log, notify=lambda m: events.append((time.monotonic(), m)))
    with server, loadgen.Background(server.http_url, image, 4, args.seconds, 100_000) as load:
        start = load.started
        time.sleep(args.seconds / 4)
        stubs = server.stubs()
        killed = time.monotonic()
        os.kill(stubs[0], signal.SIGKILL)
        replies = load.wait()
    failed = [r for r in replies if not r.ok]
    recovered = max((r.done for r in failed), default=killed)
    later = [r for r in replies if r.sent > recovered]
    return {
        "killed_at_s": killed - start, "requests": len(replies), "counts": loadgen.counts(replies),
        "failed_messages": sorted({r.message.split("] ")[-1] for r in failed}),
        "recovery_s": recovered - killed, "after_recovery": loadgen.counts(later),
        "supervisor": [(round(t - start, 2), m) for t, m in events],
        "timeline": _timeline(replies, start, lambda r: "ok" if r.ok else "failed"),
    }  # fmt: skip


# -- swap -------------------------------------------------------------------------------------------
def swap(args) -> dict:
    image = demo_frame(64, 64)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "models"
        policy, _ = queue_policy(args.bundle)
        write_repository(args.bundle, repo, queue=policy)
        server = server_for(None, repo=repo, log=args.log)
        with server, loadgen.Background(server.http_url, image, 4, args.seconds, 100_000) as load:
            start = load.started
            time.sleep(args.seconds / 3)
            written = time.monotonic()
            write_repository(args.new_bundle, repo, queue=policy, version=2)
            server.load_model()
            live = time.monotonic()
            replies = load.wait()
    first_new = min((r.done for r in replies if r.version == "2"), default=None)
    return {
        "requests": len(replies), "counts": loadgen.counts(replies),
        "load_called_s": written - start, "load_returned_s": live - start,
        "first_v2_reply_s": None if first_new is None else first_new - start,
        "v1_after_load_returned": sum(1 for r in replies if r.version == "1" and r.sent > live),
        "digests": {v: len({r.digest for r in replies if r.version == v}) for v in ("1", "2")},
        "timeline": _timeline(replies, start, lambda r: f"v{r.version}" if r.ok else "failed"),
    }  # fmt: skip


# -- fuzz -------------------------------------------------------------------------------------------
def fuzz_run(args) -> dict:
    from linearsr_edge.pipeline.process import SampleOptions
    from linearsr_edge.runtime import SRRuntime
    from linearsr_edge.serving.fuzz import Generator, fuzz, table

    bundle = Bundle.load(args.bundle)
    tags = [t for t in (bundle.tags().names if bundle.tags() else ()) if t != "<null>"]
    lo = max(1, bundle.manifest.profile.min_hw[0] // bundle.cfg.upscale)
    max_pixels = 1_000_000
    big = int((max_pixels / bundle.cfg.upscale**2) ** 0.5) + 8
    with server_for(args.bundle, log=args.log, max_pixels=max_pixels) as server:
        t0 = time.monotonic()
        sent = fuzz(server.http_url, server.grpc_url, args.requests, Generator(args.seed, tags, lo, lo + 24, big))
        seconds = time.monotonic() - t0
        ready = server.model_ready()
        good = demo_frame(lo + 8, lo + 4)
        got = loadgen.Client(server.http_url).send(good, seed=5, keep=True)
        restarts = len(server.restarts)
    with SRRuntime.load(bundle) as rt:
        want = rt.upscale(good, SampleOptions(seed=5)).image
    diff = int(np.abs(got.image.astype(int) - want).max()) if got.ok and got.shape == want.shape else None
    return {
        "requests": args.requests, "sends": len(sent), "seed": args.seed, "seconds": seconds,
        "by_kind": table(sent), "outcomes": dict(sorted(loadgen.counts(_as_replies(sent)).items())),
        "ready_after": ready, "restarts": restarts, "good_request_max_diff": diff,
    }  # fmt: skip


def _as_replies(sent):
    return [loadgen.Reply(0, 0, f"{s.protocol} {s.outcome}") for s in sent]


# -- body ------------------------------------------------------------------------------------------
def body(args) -> dict:
    """Oversize bodies (what --http-max-input-size would stop at the door, where the tritonserver has it): the
    reply, its time, and the server's RSS at its peak and after."""
    from linearsr_edge.serving.fuzz import GrpcSender, Request, Tensor, send_http

    rows = []
    with server_for(args.bundle, log=args.log) as server:
        for mib in args.mib:
            side = int((mib * 2**20 / 3) ** 0.5)
            request = Request("large", (Tensor("image", "UINT8", (1, side, side, 3), bytes(side * side * 3)),))
            for protocol in ("http", "grpc"):
                with loadgen.RssSampler(server.process.pid, every=0.05) as rss:
                    t0 = time.monotonic()
                    outcome = send_http(server.http_url, request) if protocol == "http" else None
                    if outcome is None:
                        sender = GrpcSender(server.grpc_url)
                        outcome = sender(request)
                        sender.close()
                    seconds = time.monotonic() - t0
                time.sleep(1.0)
                after = loadgen.rss_bytes(server.process.pid)
                rows.append({"MiB": mib, "protocol": protocol, "reply": outcome, "seconds": round(seconds, 2),
                             "rss_before_mib": round(rss.samples[0][1] / 2**20),
                             "rss_peak_mib": round(max(b for _, b in rss.samples) / 2**20),
                             "rss_after_mib": round(after / 2**20)})  # fmt: skip
                print("  " + json.dumps(rows[-1]), flush=True)
        ok = loadgen.closed_loop(server.http_url, demo_frame(64, 64), 1, 30, 3)
    return {"rows": rows, "after": loadgen.counts(ok)}


# -- helpers ----------------------------------------------------------------------------------------
def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _timeline(replies, start: float, label) -> list[tuple[int, dict[str, int]]]:
    """Per second since ``start`` (by when the request was sent): counts by label."""
    buckets: dict[int, dict[str, int]] = {}
    for r in replies:
        second = int(r.sent - start)
        cell = buckets.setdefault(second, {})
        cell[label(r)] = cell.get(label(r), 0) + 1
    return sorted(buckets.items())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="run", required=True)
    for name in ("sweep", "overload", "crash", "swap", "fuzz", "body"):
        p = sub.add_parser(name)
        p.add_argument("--log", type=Path, help="append tritonserver's log here")
        p.add_argument("--out", type=Path, help="write the result as JSON here")
        if name == "sweep":
            p.add_argument("--bundles", nargs="+", required=True)
            p.add_argument("--perf-analyzer", help="the perf_analyzer binary (default: on PATH)")
            p.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
            p.add_argument("--timeout", type=float, default=240.0, help="seconds per perf_analyzer run")
        else:
            p.add_argument("--bundle", type=Path, required=True)
        if name == "swap":
            p.add_argument("--new-bundle", type=Path, required=True)
        if name in ("overload", "crash", "swap"):
            p.add_argument("--seconds", type=float, default={"overload": 180, "crash": 40, "swap": 30}[name])
        if name == "body":
            p.add_argument("--mib", type=int, nargs="+", default=[16, 64, 256])
        if name == "fuzz":
            p.add_argument("--requests", type=int, default=600)
            p.add_argument("--seed", type=int, default=24)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped run still stops its server
    print(machine_line(), flush=True)
    runs = {"sweep": sweep, "overload": overload, "crash": crash, "swap": swap, "fuzz": fuzz_run, "body": body}
    run = runs[args.run]
    result = {"machine": machine_line(), "run": args.run, "result": run(args)}
    text = json.dumps(result, indent=1, default=str)
    if args.out:
        args.out.write_text(text + "\n")
    if args.run != "sweep":
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
