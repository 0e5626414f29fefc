"""``linearsr-export``: export a LinearSR model to a verified artifact bundle for one target.

Flags come from typed options: the common ones here, the calibration's and the quality
thresholds' from their dataclasses, and each target's from its own options class. A flag that
does not apply to the chosen target is refused before any work, naming the flags it accepts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from linearsr_edge.calibration.collect import CalibrationOptions
from linearsr_edge.checks import QualityThresholds
from linearsr_edge.cli.common import quiet_third_party, run_cli, version_string
from linearsr_edge.errors import ConfigError
from linearsr_edge.options import add_flags, flags_of, from_flags, given_flags, refuse_flags
from linearsr_edge.registry import PLATFORM_NAMES, wrong_platform
from linearsr_edge.specs import Profile, ProfileError, parse_resolution
from linearsr_edge.targets import TargetInfo, all_targets, get_target

PROG = "linearsr-export"
PROFILE_FLAGS = {
    "batch": "--max-batch",
    "min_hw": "--min-resolution",
    "opt_hw": "--opt-resolution",
    "max_hw": "--max-resolution",
    "cond_len": "--max-tags",
}
PARITY_FLAGS = ["--parity-image"]  # targets without calibration
CALIB_FLAGS = ["--calib-dir"]  # targets with calibration (besides CalibrationOptions' own)


def _targets_help() -> str:
    lines = []
    for t in all_targets():
        elsewhere = wrong_platform(t)
        if elsewhere:
            note = f"  [{PLATFORM_NAMES.get(t.platforms[0], t.platforms[0])} only]"
        else:
            note = "" if t.available else f"  [needs: pip install 'linearsr-edge[{t.extra}]']"
        lines.append(f"  {t.name:<14} {t.description}{note}")
    return "targets:\n" + "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Export every expert denoiser, the encoder and the decoder to one bundle folder, run it on the "
        "target's own backend against the PyTorch reference (per component and end to end on real photos), and "
        "record the report in the manifest. A target whose backend is not installed here is written unverified.",
        epilog=_targets_help() + "\n\nexample: linearsr-export --target onnx-fp32 --out bundles/demo-onnx",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--version", action="version", version=version_string(PROG))
    ap.add_argument(
        "--target",
        required=True,
        metavar="NAME",
        help="export target (see the list below), or auto: this device's best (the target measured fastest here "
        "by linearsr-doctor --measure, else the device profile's first)",
    )
    ap.add_argument(
        "--measure",
        action="store_true",
        help="with --target auto: first export each target of the device profile (this --checkpoint, default "
        "export profile), check its golden set here, time it on a 128x128 photo, and export the fastest that "
        "passes; the answer is cached for this machine (minutes)",
    )
    ap.add_argument("--checkpoint", type=Path, help="a LinearSR model folder (default: the bundled demo model)")
    ap.add_argument("--out", type=Path, help="bundle folder to create (default: bundles/<target>)")
    ap.add_argument("--max-resolution", default="1024x1024", metavar="WxH", help="largest output image (1024x1024)")
    ap.add_argument("--min-resolution", default="64x64", metavar="WxH", help="smallest output image (64x64)")
    ap.add_argument(
        "--opt-resolution", metavar="WxH", help="output size to optimise for (256x256, kept within min..max)"
    )
    ap.add_argument("--max-batch", type=int, default=4, help="largest batch the bundle accepts (default 4)")
    ap.add_argument("--max-tags", type=int, default=16, help="most tags per call, the null tag included (16)")
    ap.add_argument(
        "--tags", nargs="*", default=[], help="tags to cache (with --cond-file), or to check against the model's own"
    )
    ap.add_argument("--cond-file", type=Path, help=".npz of precomputed tag embeddings, one [D] array per tag name")
    ap.add_argument("--text-encoder", type=Path, help="local transformers folder that encodes --tags at export time")
    ap.add_argument(
        "--triton-repo",
        type=Path,
        metavar="DIR",
        help="also write a Triton model repository serving the bundle (see linearsr-triton for its options)",
    )
    ap.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ap.add_argument("-v", "--verbose", action="store_true", help="show third-party warnings and log lines")

    seen: set[str] = set()
    checks = ap.add_argument_group("verification (every target)")
    add_flags(checks, QualityThresholds, seen)
    checks.add_argument(
        "--parity-image",
        type=Path,
        default=argparse.SUPPRESS,
        help="FP32 targets: photo for the end-to-end check (default: the demo sample)",
    )
    cal = ap.add_argument_group("calibration (FP16: held-out data for the gates; INT8: band calibration too)")
    cal.add_argument(
        "--calib-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="your own photos (default: the demo samples); the last --heldout-images are held out for the gates",
    )
    add_flags(cal, CalibrationOptions, seen)
    # base classes first, so that flags shared through a subclass are listed under every target using them
    for options in sorted({t.options for t in all_targets()}, key=lambda c: (len(c.__mro__), c.__name__)):
        users = ", ".join(t.name for t in all_targets() if issubclass(t.options, options))
        if flags_of(options):
            add_flags(ap.add_argument_group(f"{users} options"), options, seen)
    return ap


def accepted_flags(target: TargetInfo) -> list[str]:
    """The target-dependent flags that ``target`` honours."""
    flags = flags_of(QualityThresholds)
    if target.calibration == "none":
        flags += PARITY_FLAGS
    else:
        scopes = ("", "full") if target.calibration == "full" else ("",)
        flags += CALIB_FLAGS + flags_of(CalibrationOptions, scopes)
    return flags + flags_of(target.options)


def auto_target(measure: bool = False, checkpoint: Path | None = None, progress: bool = True) -> str:
    """``--target auto``: the target measured fastest on this machine (measured now with ``measure``, else the
    cached answer), else the device profile's first target that this install can export; logs why."""
    import logging

    from linearsr_edge.cli.doctor import recommend
    from linearsr_edge.devices import detect
    from linearsr_edge.devices.profiles import match_profile
    from linearsr_edge.profiling.choice import cached_choice, run_measurement

    device = detect()
    profile = match_profile(device)
    if profile is None:
        raise ConfigError(f"--target auto: no device profile matches {device.name} ({device.arch}); name a target")
    if measure:
        choice, path = run_measurement(profile, checkpoint, progress=progress)
        print(f"{choice.table()}\nmeasured here (saved as {path})")
        if choice.chosen is None:
            raise ConfigError("--measure: no target passed its golden set here; see the table above")
    else:
        choice = cached_choice()
    name, why = recommend(profile, choice)
    if name is None:
        raise ConfigError(f"--target auto: {why}")
    isa = f" ({', '.join(device.isa)})" if device.isa else ""
    logging.getLogger("linearsr_edge").info(
        "auto: %s on %s%s, profile %s, because %s", name, device.name, isa, profile.name, why
    )
    return name


def check_flags(parser: argparse.ArgumentParser, args: argparse.Namespace, target: TargetInfo) -> None:
    """Refuse any given flag that ``target`` does not honour."""
    refuse_flags(given_flags(parser, args), accepted_flags(target), f"target {target.name}")


def profile_from_args(args: argparse.Namespace) -> Profile:
    """The export profile, refused (naming the flag) before any model is loaded."""
    try:
        lo, hi = parse_resolution(args.min_resolution), parse_resolution(args.max_resolution)
        if args.opt_resolution:
            opt = parse_resolution(args.opt_resolution)
        else:
            opt = tuple(min(max(256, a), b) for a, b in zip(lo, hi, strict=True))
        return Profile(
            min_hw=lo,
            opt_hw=opt,
            max_hw=hi,
            batch=(1, 1, args.max_batch),
            cond_len=(1, min(2, args.max_tags), args.max_tags),
        )
    except ProfileError as exc:
        raise ConfigError(f"{PROFILE_FLAGS[exc.field]}: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_cli(lambda: _run(parser, args), PROG, verbose=args.verbose)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    profile = profile_from_args(args)
    if args.measure and args.target != "auto":
        raise ConfigError("--measure chooses the target: use it with --target auto")
    auto = args.target == "auto"
    target = get_target(auto_target(args.measure, args.checkpoint, not args.quiet) if auto else args.target)
    check_flags(parser, args, target)
    out = args.out or Path("bundles") / target.name
    from linearsr_edge.bundle import check_destination

    check_destination(out, args.overwrite)
    given = vars(args)
    from linearsr_edge.build import ExportOptions, build_bundle  # the heavy imports (torch), after the checks
    from linearsr_edge.quality.parity import format_rows

    if not args.verbose:
        quiet_third_party()

    opts = ExportOptions(
        target=target.name,
        out=out,
        checkpoint=args.checkpoint,
        profile=profile,
        tags=tuple(args.tags),
        cond_file=args.cond_file,
        text_encoder=args.text_encoder,
        overwrite=args.overwrite,
        progress=not args.quiet,
        parity_image=given.get("parity_image"),
        calib_dir=given.get("calib_dir"),
        calibration=from_flags(CalibrationOptions, given),
        thresholds=_thresholds(target, given),
        target_options=from_flags(target.options, given),
    )
    result = build_bundle(opts)
    bundle, verification = result.bundle, result.verification
    if verification.rows:
        print(format_rows(verification.rows))
    line = f"wrote {bundle.path} ({bundle.target}, {len(bundle.component_names())} components)"
    if verification.verified:
        print(f"{line}, verified on {verification.backend} {verification.backend_version}")
    else:
        print(f"{line}, NOT VERIFIED: {verification.reason}")
        if verification.finish_on_device:
            print(f"to finish, on the device: {verification.finish_on_device}")
    if args.triton_repo is not None:
        from linearsr_edge.serving.triton import queue_policy, write_repository

        policy, line = queue_policy(bundle.path)
        print(line)
        print(f"wrote Triton repository {write_repository(bundle.path, args.triton_repo, queue=policy)}")
    return 0


def _thresholds(target: TargetInfo, given: dict) -> QualityThresholds | None:
    if not any(d in given for d in ("min_psnr", "min_expert_sqnr", "min_step_snr")):
        return None
    return from_flags(QualityThresholds, given, **QualityThresholds.default(target.precision).__dict__)


if __name__ == "__main__":
    raise SystemExit(main())
