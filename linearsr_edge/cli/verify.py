"""``linearsr-verify``: prove a bundle's quality on this device, with its golden set.

Runs each bundle's golden set (FP32 reference cases recorded at export) on the chosen backend,
device and options, prints the same table as the export gates plus a fingerprint (backend,
version, settings, CPU and ISA), and exits 1 when a bundle misses its thresholds. Given several
bundles of one model, it also times one expert step of each at the profile's optimum size and
says when INT8 does not pay on this CPU, naming the faster bundle it measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from linearsr_edge.cli.common import add_backend_flags, backend_options, run_cli, version_string
from linearsr_edge.errors import LinearSRError
from linearsr_edge.options import given_flags
from linearsr_edge.pipeline.session import choose_backend

PROG = "linearsr-verify"
EXIT_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Run each bundle's golden set on this device (backend, options, CPU) against the FP32 "
        "reference outputs recorded at export; print the checks and where they ran; exit 1 if any bundle fails.",
        epilog="example: linearsr-verify bundles/demo-int8 bundles/demo-fp32 --threads 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--version", action="version", version=version_string(PROG))
    ap.add_argument("bundles", type=Path, nargs="+", metavar="BUNDLE", help="bundle folders (linearsr-export)")
    ap.add_argument("--backend", default="auto", help="runtime backend (default: auto, per bundle format)")
    ap.add_argument("--json", action="store_true", help="print the reports as JSON")
    ap.add_argument("--no-timing", action="store_true", help="skip the per-step latency comparison")
    ap.add_argument("--runs", type=int, default=5, help="timed expert steps per bundle (default 5)")
    add_backend_flags(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_cli(lambda: _run(args, given_flags(parser, args)), PROG)


def step_ms(runtime, runs: int) -> tuple[float, str]:
    """Median ms of one expert step at the profile's optimum size (batch 1), after one warm-up."""
    spec = runtime.spec("expert_0")
    feeds = spec.dummy_inputs("opt", batch=1, seed=0)
    runtime.run_component("expert_0", feeds)
    times = []
    for _ in range(max(1, runs)):
        t0 = time.perf_counter()
        runtime.run_component("expert_0", feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    h, w = feeds["latent"].shape[2:]
    return statistics.median(times), f"{w}x{h} latent"


def kernel_check(bundle, options, report) -> dict:
    """The golden pipeline PSNR with ONNX Runtime's integer kernels against the same Q/DQ graph evaluated in
    float (``session.disable_quant_qdq``): what this CPU's kernel path costs (x86 without VNNI saturates
    U8 x S8 pair sums; 7-bit weights cannot)."""
    from dataclasses import replace

    from linearsr_edge.runtime import SRRuntime

    emulated = replace(options, session_config={**options.session_config, "session.disable_quant_qdq": "1"})
    with SRRuntime.load(bundle, backend="onnxruntime", options=emulated) as runtime:
        ideal = runtime.verify(report.thresholds).rows[-1].value
    real = report.rows[-1].value
    return {"psnr_integer_kernels": real, "psnr_float_qdq": ideal, "kernel_cost_db": ideal - real}


def _run(args: argparse.Namespace, backend_flags: list[str]) -> int:
    from linearsr_edge.bundle import Bundle
    from linearsr_edge.errors import ConfigError
    from linearsr_edge.runtime import SRRuntime

    if args.runs < 1:
        raise ConfigError("--runs must be at least 1")
    reports, timings = [], {}
    for path in args.bundles:
        bundle = Bundle.load(path)
        info = choose_backend(bundle.format, args.backend)
        options = backend_options(info, args, backend_flags)
        with SRRuntime.load(bundle, backend=info.name, options=options, build="if-needed") as runtime:
            report = runtime.verify()
            if not args.no_timing:
                timings[path] = (bundle, *step_ms(runtime, args.runs))
                report.extra["step_ms"] = round(timings[path][1], 3)
        if bundle.precision.value == "int8" and info.name == "onnxruntime":
            report.extra["kernel_check"] = kernel_check(bundle, options, report)
        report.extra["verdict"] = verdict(bundle, report)
        reports.append((bundle, report))
        if not args.json:
            _print_report(bundle, report, timings.get(path))
    advice = _advice(timings) if len(timings) > 1 else None
    if args.json:
        print(json.dumps({"reports": [r.to_dict() for _, r in reports], "advice": advice}, indent=2, default=str))
    elif advice:
        print(advice)
    return 0 if all(r.passed for _, r in reports) else EXIT_FAILED


def _print_report(bundle, report, timing) -> None:
    fp = report.fingerprint
    settings = ", ".join(
        f"{k} {v}"
        for k, v in fp.items()
        if k not in ("backend", "backend_version", "cpu", "isa", "isa_cap", "cores", "arch", "os")
    )
    print(f"\n{bundle.path} ({bundle.target}) on {fp.get('backend')} {fp.get('backend_version')} ({settings})")
    cap = f" (oneDNN capped at {fp['isa_cap']})" if fp.get("isa_cap") else ""
    isa = " ".join(fp.get("isa", []))
    print(f"machine: {fp.get('cpu')}, {fp.get('cores')} cores, {fp.get('arch')}; ISA: {isa}{cap}")
    print(report.table())
    if timing is not None:
        print(f"one expert step at {timing[2]}: {timing[1]:.1f} ms")
    check = report.extra.get("kernel_check")
    if check is not None:
        cost = check["kernel_cost_db"]
        print(
            f"integer kernels on this CPU: golden PSNR {check['psnr_integer_kernels']:.2f} dB against "
            f"{check['psnr_float_qdq']:.2f} dB with Q/DQ in float: the kernel path costs {cost:+.2f} dB"
            + (" (saturation? re-export without --int8-full-range)" if cost > 1.0 else "")
        )
    print(f"{bundle.target}: {report.extra['verdict']}", file=sys.stdout)


def verdict(bundle, report) -> str:
    """``PASSED`` / ``FAILED for ...``; a bundle whose own runtime did not run here (TensorRT engines, whose
    graphs ONNX Runtime checked) says what ran and that it stays unverified."""
    from linearsr_edge.targets import get_target

    backend = report.fingerprint.get("backend")
    try:
        verified_by = get_target(bundle.target).verified_by
    except LinearSRError:  # a target of a plugin that is not installed here
        verified_by = ()
    if not report.passed:
        return f"FAILED for {', '.join(report.failed_components)} on {backend}"
    if verified_by and backend not in verified_by:
        finish = bundle.verification.finish_on_device or f"linearsr-build-engines {bundle.path}"
        return (
            f"checks passed on {backend}, which ran the bundle's graphs; NOT VERIFIED for "
            f"{' or '.join(verified_by)}: the engines run only where they are built ({finish})"
        )
    return "PASSED"


def _advice(timings: dict) -> str | None:
    """Per model: the fastest bundle measured; and each INT8 bundle that an FP32 bundle of the *same format*
    (so the same runtime: onnx-int8 against onnx-fp32, ov-int8 against ov-fp32) outruns here."""
    by_model: dict[str, list] = {}
    for bundle, ms, where in timings.values():
        key = json.dumps(bundle.manifest.model, sort_keys=True)
        by_model.setdefault(key, []).append((ms, bundle, where))
    lines = []
    for entries in by_model.values():
        if len(entries) < 2:
            continue
        fastest = min(entries, key=lambda e: e[0])
        lines.append(
            f"fastest here: {fastest[1].target} ({fastest[0]:.1f} ms per step at {fastest[2]}): {fastest[1].path}"
        )
        for ms, bundle, where in entries:
            if bundle.precision.value != "int8":
                continue
            same = [e for e in entries if e[1].format == bundle.format and e[1].precision.value == "fp32"]
            beaten = [e for e in same if e[0] <= ms]
            if beaten:
                best = min(beaten, key=lambda e: e[0])
                lines.append(
                    f"INT8 does not pay on this CPU ({' '.join(_isa())}) for {bundle.target}: {ms:.1f} ms per step "
                    f"at {where} against {best[0]:.1f} ms for {best[1].target} on the same runtime; "
                    f"use {best[1].path}"
                )
    return "\n".join(lines) or None


def _isa() -> list[str]:
    from linearsr_edge.machine import cpu_isa

    return cpu_isa()[1]


if __name__ == "__main__":
    raise SystemExit(main())
