"""``linearsr-doctor``: what this device is, its profile, the installed backends, and the export
target to use here, with the reason."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from linearsr_edge.cli.common import run_cli, version_string

PROG = "linearsr-doctor"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Detect this device (Jetson, NVIDIA GPU, Apple silicon, Intel CPU/iGPU/NPU, generic CPU), match "
        "its device profile, list the installed runtime backends, and recommend an export target.",
    )
    ap.add_argument("--version", action="version", version=version_string(PROG))
    ap.add_argument("--profile", type=Path, help="your own profile JSON: overrides any field of the matched one")
    ap.add_argument("--json", action="store_true", help="print the same as JSON")
    return ap


def recommend(profile) -> tuple[str | None, str]:
    """The profile's first target that this install can export, and why."""
    from linearsr_edge.registry import wrong_platform
    from linearsr_edge.targets import all_targets

    targets = {t.name: t for t in all_targets()}
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
    target, why = recommend(profile) if profile is not None else (None, "no device profile matches this device")
    from linearsr_edge.errors import LinearSRError
    from linearsr_edge.profiling.roofline import sgemm_rates

    threads = device.cores or 1
    try:
        rates = sgemm_rates(threads)
        measured = {"sgemm_gflops": max(rates.values()), "sgemm_by": rates, "threads": threads}
    except LinearSRError as exc:  # the rate is a report, not a reason to fail the diagnosis
        measured = {"sgemm_gflops": None, "sgemm_by": {}, "threads": threads, "error": str(exc)}
    return {
        "device": device.to_dict(),
        "rates": measured,
        "profile": None if profile is None else {**profile.__dict__, "targets": list(profile.targets)},
        "backends": backends,
        "recommended_target": target,
        "reason": why,
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args), PROG)


def _run(args: argparse.Namespace) -> int:
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
