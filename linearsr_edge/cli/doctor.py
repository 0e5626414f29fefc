"""``linearsr-doctor``: what this device is, its profile, the installed backends, and the export
target to use here, with the reason."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from linearsr_edge.cli.common import run_cli, version_string
from linearsr_edge.errors import ConfigError
from linearsr_edge.options import positive_int

PROG = "linearsr-doctor"
MEASURE_SIZE, MEASURE_REPEATS = 128, 3


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Detect this device (Jetson, NVIDIA GPU, Apple silicon, Intel CPU/iGPU/NPU, generic CPU), match "
        "its device profile, list the installed runtime backends, and recommend an export target.",
    )
    ap.add_argument("--version", action="version", version=version_string(PROG))
    ap.add_argument("--profile", type=Path, help="your own profile JSON: overrides any field of the matched one")
    ap.add_argument("--json", action="store_true", help="print the same as JSON")
    m = ap.add_argument_group("choosing the target by measurement")
    m.add_argument(
        "--measure",
        action="store_true",
        help="export each target of this device's profile (the demo model, or --checkpoint), check its golden set "
        "here, time it, and pick the fastest that passes; the answer is cached for this machine and "
        "`linearsr-export --target auto` uses it (minutes: every target exports once, then is reused)",
    )
    m.add_argument("--checkpoint", type=Path, help="--measure: your model folder instead of the demo model")
    m.add_argument(
        "--size", type=positive_int, help=f"--measure: the input photo's side in pixels (default {MEASURE_SIZE})"
    )
    m.add_argument(
        "--repeats", type=positive_int, help=f"--measure: timed upscales per target (default {MEASURE_REPEATS})"
    )
    return ap


def recommend(profile, measured=None) -> tuple[str | None, str]:
    """The target to export here, and why: the one measured on this machine (``measured``, a `MeasuredChoice`)
    when it can be exported, else the profile's first target that this install can export."""
    from linearsr_edge.registry import wrong_platform
    from linearsr_edge.targets import all_targets

    targets = {t.name: t for t in all_targets()}
    chosen = None if measured is None else targets.get(measured.chosen or "")
    if chosen is not None and chosen.available:
        fast = next(c for c in measured.candidates if c.target == chosen.name)
        h, w = measured.size
        return chosen.name, (
            f"measured on this machine ({measured.measured_at}): the fastest target that passes its golden set here, "
            f"{fast.frame_seconds:.3f} s per {w}x{h} frame (linearsr-doctor --measure to measure again)"
        )
    skipped = []
    for name in profile.targets:
        target = targets.get(name)
        if target is None:
            skipped.append(f"{name} (not in this version)")
        elif not target.available:
            install = f"pip install 'linearsr-edge[{target.extra}]'"
            skipped.append(f"{name} ({wrong_platform(target) or install})")
        else:
            why = profile.reason + (f"; skipped {', '.join(skipped)}" if skipped else "")
            return name, why
    return None, f"none of {', '.join(profile.targets)} can be exported here: " + ", ".join(skipped)


def report(profile_file: Path | None = None) -> dict[str, Any]:
    from linearsr_edge.devices import detect
    from linearsr_edge.devices.profiles import load_profile, match_profile
    from linearsr_edge.pipeline.session import BACKENDS
    from linearsr_edge.registry import unavailable_reason

    device = detect()
    profile = match_profile(device)
    if profile_file is not None:
        profile = load_profile(profile_file, base=profile)
    backends = []
    for b in sorted(BACKENDS.entries(), key=lambda b: b.name):
        backends.append(
            {
                "name": b.name,
                "installed": b.available,
                "version": b.version() if b.available else None,
                "formats": list(b.formats),
                "extra": b.extra,
                "unavailable": unavailable_reason(b),
            }
        )
    from linearsr_edge.profiling.choice import cached_choice

    choice = cached_choice()
    if profile is None:
        target, why = None, "no device profile matches this device"
    else:
        target, why = recommend(profile, choice)
    from linearsr_edge.errors import LinearSRError
    from linearsr_edge.profiling.roofline import INT8, sgemm_rates

    threads = device.cores or 1
    try:
        rates = sgemm_rates(threads)
        fp32 = {k: v for k, v in rates.items() if not k.startswith(INT8)}
        int8 = {k[len(INT8) :]: v for k, v in rates.items() if k.startswith(INT8)}
        measured = {
            "sgemm_gflops": max(fp32.values()),
            "sgemm_by": fp32,
            "int8_gops": max(int8.values(), default=None),
            "int8_by": int8,
            "threads": threads,
        }
    except LinearSRError as exc:  # the rate is a report, not a reason to fail the diagnosis
        measured = {"sgemm_gflops": None, "sgemm_by": {}, "threads": threads, "error": str(exc)}
    return {
        "device": device.to_dict(),
        "rates": measured,
        "profile": None if profile is None else {**profile.__dict__, "targets": list(profile.targets)},
        "backends": backends,
        "recommended_target": target,
        "reason": why,
        "measured_choice": None if choice is None else choice.to_dict(),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args), PROG)


def _measure(args: argparse.Namespace) -> None:
    from linearsr_edge.devices import detect
    from linearsr_edge.devices.profiles import load_profile, match_profile
    from linearsr_edge.profiling.choice import run_measurement

    profile = match_profile(detect())
    if args.profile is not None:
        profile = load_profile(args.profile, base=profile)
    if profile is None:
        raise ConfigError("--measure: no device profile matches this device; give one with --profile")
    if args.checkpoint is not None and not args.checkpoint.is_dir():
        raise ConfigError(f"--checkpoint {args.checkpoint} is not a model folder")
    size, repeats = args.size or MEASURE_SIZE, args.repeats or MEASURE_REPEATS
    import linearsr_edge.build  # noqa: F401  (PyTorch: imported first, so that its log setup is silenced after)
    from linearsr_edge.cli.common import quiet_third_party

    quiet_third_party()
    choice, path = run_measurement(profile, args.checkpoint, size, repeats, progress=not args.json)
    if not args.json:
        print(
            f"measured {' > '.join(profile.targets)} ({profile.name}) on {choice.model}, {size}x{size} photo, "
            f"{choice.threads} threads:\n{choice.table()}"
        )
        print(f"chosen:   {choice.chosen or 'none passed'} (saved as {path}; linearsr-export --target auto uses it)\n")


def _run(args: argparse.Namespace) -> int:
    if args.measure:
        _measure(args)
    elif args.checkpoint is not None or args.size is not None or args.repeats is not None:
        raise ConfigError("--checkpoint, --size and --repeats apply to --measure")
    data = report(args.profile)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    d, p = data["device"], data["profile"]
    mem = f"{d['memory_bytes'] / (1 << 30):.1f} GiB" if d["memory_bytes"] else "unknown memory"
    print(f"device:   {d['name']} ({d['family']}, {d['arch']}, {d['cores']} cores, {mem})")
    print(f"cpu:      {d['cpu']}; ISA: {' '.join(d['isa']) or 'none detected'}")
    rates = data["rates"]
    if rates["sgemm_gflops"] is None:
        print(f"limit:    not measured: {rates['error']}")
    else:
        by = ", ".join(f"{n} {v:.1f}" for n, v in sorted(rates["sgemm_by"].items(), key=lambda kv: -kv[1]))
        print(
            f"limit:    SGEMM {rates['sgemm_gflops']:.1f} GFLOP/s (float32, {rates['threads']} threads; {by}; "
            "measured once on this machine; linearsr-profile puts each component against the best)"
        )
        if rates.get("int8_gops"):
            by = ", ".join(f"{n} {v:.1f}" for n, v in sorted(rates["int8_by"].items(), key=lambda kv: -kv[1]))
            print(f"          INT8 {rates['int8_gops']:.1f} GOP/s (uint8 x int8; {by}): INT8 bundles' experts' limit")
    for a in d["accelerators"]:
        print(f"          + {a['kind']}: {a['name']} via {a['backend']}")
    if p is not None:
        w, h = p["max_resolution"]
        print(
            f"profile:  {p['name']} ({p['source']}): budget {p['memory_budget_bytes'] / (1 << 30):.1f} GiB, "
            f"up to {w}x{h}, tiles {p['tile_size']}, targets {' > '.join(p['targets'])}"
        )
    for b in data["backends"]:
        state = f"{b['version']}" if b["installed"] else f"not available: {b['unavailable']}"
        print(f"backend:  {b['name']:<12} {state}")
    target = data["recommended_target"]
    print(f"export:   {target or 'nothing'}: {data['reason']}")
    if target:
        print(f"          linearsr-export --target {target} --out bundles/{target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
