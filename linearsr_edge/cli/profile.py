"""``linearsr-profile``: latency of a bundle on this device, several bundles side by side, and what fits a
latency budget.

One bundle: warm-up runs, then timed whole upscales with every component call traced; prints per
component and expert p50/p95/min, the per-step timeline, whole-image latency and throughput, time
outside sessions, peak RSS and the backend settings in force (``--json``; ``--plot FILE`` draws a
PNG). ``--compare`` puts bundles in one table with their export-gate quality and speed-up against
the first. ``--budget-ms`` measures steps x bundles at one resolution and prints the best quality
that meets the budget, with the command and the `SampleOptions` that get it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path

from linearsr_edge.cli.common import add_backend_flags, run_cli, version_string
from linearsr_edge.errors import ConfigError, LinearSRError
from linearsr_edge.options import given_flags

PROG = "linearsr-profile"
EXIT_OVER_BUDGET = 1
DEFAULT_FRAME = "astronaut_lr.png"  # a demo sample shipped in the package


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Measure a bundle's latency on this device: per component and expert, per step, whole image, "
        "host-loop time, peak memory. --compare puts bundles side by side; --budget-ms answers which bundle and "
        "step count give the best quality within a latency budget.",
        epilog="examples:\n"
        "  linearsr-profile bundles/onnx-int8 --resolution 160x90 --plot int8.png\n"
        "  linearsr-profile --compare bundles/onnx-fp32 bundles/onnx-int8 bundles/ov-int8\n"
        "  linearsr-profile bundles/onnx-fp32 --compare bundles/ov-int8 --budget-ms 150 --resolution 160x90\n"
        "exit status: 0, or 1 when --budget-ms finds nothing that fits, 2 on a usage error",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--version", action="version", version=version_string(PROG))
    ap.add_argument("bundle", type=Path, nargs="?", help="bundle folder to profile (linearsr-export)")
    ap.add_argument(
        "--compare", type=Path, nargs="+", default=[], metavar="BUNDLE", help="more bundles: one table across all"
    )
    ap.add_argument(
        "--resolution",
        dest="frame_resolution",  # not OpenVINO's pin (same flag, skipped below)
        metavar="WxH",
        help="input frame size, e.g. a camera's 640x360 (the output is the model's scale times this); "
        "default: the bundle's optimum output size over the scale",
    )
    ap.add_argument(
        "--image", type=Path, help=f"frame to upscale, resized to fit (default: the demo's {DEFAULT_FRAME})"
    )
    ap.add_argument("--steps", type=int, help="sampling steps (default: the model's)")
    ap.add_argument("--solver", choices=("euler", "heun"), default="euler", help="ODE solver (heun: 2 NFE/step)")
    ap.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    ap.add_argument("--runs", type=int, help="timed runs (default 10; 5 per configuration with --budget-ms)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    ap.add_argument("--batch", type=int, default=1, help="frames per call (default 1; throughput counts them all)")
    ap.add_argument("--json", action="store_true", help="print the measurements as JSON")
    ap.add_argument("--plot", type=Path, metavar="FILE.png", help="draw the timeline and breakdown (needs matplotlib)")
    ap.add_argument("--budget-ms", type=float, help="latency budget per frame: find the best quality that fits")
    ap.add_argument(
        "--budget-stat",
        choices=("p50", "p95"),
        default="p50",
        help="--budget-ms: which latency must fit (default p50; p95 for a stream that must keep up)",
    )
    ap.add_argument(
        "--try-steps",
        default="1,2,4",
        metavar="N,N,...",
        help="--budget-ms: step counts to measure (default 1,2,4; the model's default is the quality reference)",
    )
    ap.add_argument(
        "--try-tiles",
        metavar="PX,PX,...",
        help="--budget-ms: also measure tiled upscales with these tile sizes in output pixels (e.g. 256,512)",
    )
    ap.add_argument("--backend", default="auto", help="runtime backend (default: auto, per bundle format)")
    ap.add_argument(
        "--residency", default="auto", metavar="auto|all|one|BYTES", help="which sessions stay open (default: auto)"
    )
    ap.add_argument(
        "--no-roofline",
        action="store_true",
        help="skip the FLOP counts and the SGEMM rate they are compared with (measured once per machine, ~2 s)",
    )
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_backend_flags(ap, skip=("--resolution",))  # OpenVINO's pin: the frames here are this size anyway
    return ap


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_cli(lambda: _run(args, given_flags(parser, args)), PROG)


def parse_steps(text: str, flag: str = "--try-steps") -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]`` (positive integers, sorted, unique)."""
    try:
        steps = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise ConfigError(f"{flag} takes positive integers like 1,2,4, got {text!r}") from None
    if not steps or steps[0] < 1:
        raise ConfigError(f"{flag} takes positive integers, got {text!r}")
    return steps


def input_size(resolution: str | None, bundle) -> tuple[int, int]:
    """The input frame's (H, W): ``--resolution``, else the bundle's optimum output over the scale."""
    from linearsr_edge.specs import parse_resolution

    if resolution:
        return parse_resolution(resolution)
    s = bundle.cfg.upscale
    return tuple(max(1, v // s) for v in bundle.profile.opt_hw)


def load_frame(path: Path | None, height: int, width: int):
    from linearsr_edge.demo import SAMPLES_DIR
    from linearsr_edge.pipeline.imaging import read_image
    from linearsr_edge.profiling import fit_frame

    return fit_frame(read_image(path or SAMPLES_DIR / DEFAULT_FRAME), height, width)


class _Opener:
    """Opens each bundle on its backend with the flags given; a flag no chosen backend takes is refused."""

    def __init__(self, args: argparse.Namespace, given: list[str], bundles: list) -> None:
        from linearsr_edge.options import flags_of, from_flags, refuse_flags
        from linearsr_edge.pipeline.session import choose_backend

        self.bundles = bundles
        self.infos = [choose_backend(b.format, args.backend) for b in bundles]
        accepted = sorted({f for info in self.infos for f in flags_of(info.options)})
        refuse_flags(given, accepted, "the backends of these bundles")
        self.options = [from_flags(info.options, vars(args)) for info in self.infos]
        self.residency = int(args.residency) if args.residency.isdigit() else args.residency
        self.given = given
        self.args = args

    @contextmanager
    def __call__(self, i: int):
        from linearsr_edge.runtime import SRRuntime

        runtime = SRRuntime.load(
            self.bundles[i], self.infos[i].name, self.options[i], residency=self.residency, build="if-needed"
        )
        try:
            yield runtime
        finally:
            runtime.close()

    def flags_for(self, i: int) -> list[str]:
        """The backend flags given that apply to bundle i's backend, as command-line words."""
        from linearsr_edge.options import dest, flag_fields

        words = []
        for f in flag_fields(self.infos[i].options):
            flag = f.metadata["flag"]
            if flag in self.given:
                value = getattr(self.args, dest(f))
                if isinstance(value, bool):
                    words.append(flag)
                else:
                    words += [flag, *(map(str, value) if isinstance(value, list | tuple) else [str(value)])]
        return words


def over_budget_advice(fastest, budget_ms: float) -> str:
    """What is left to try when even the fastest configuration (a `BudgetRow`) misses the budget: only the
    levers it does not already pull (INT8, one step), then the frame size, which every latency scales with."""
    tries = []
    if fastest.precision != "int8":
        tries.append("an INT8 bundle of this model (linearsr-export --target onnx-int8 or ov-int8)")
    if fastest.steps > 1:
        tries.append("--try-steps 1")
    share = budget_ms / fastest.p50_ms
    tries.append(f"a smaller frame: this one would have to shrink to about {share:.0%} of its pixels")
    return "Try " + "; or ".join(tries) + "."


def options_repr(options) -> str:
    """``OVOptions(threads=2)``: the fields that differ from their defaults."""
    from linearsr_edge.options import changed_fields

    fields = ", ".join(f"{k}={v!r}" for k, v in changed_fields(options).items())
    return f"{type(options).__name__}({fields})"


def _run(args: argparse.Namespace, backend_flags: list[str]) -> int:
    from tqdm import tqdm

    from linearsr_edge.bundle import Bundle
    from linearsr_edge.pipeline.process import SampleOptions
    from linearsr_edge.profiling import add_roofline, compare_rows, format_compare, plot_report, profile_many, to_json

    paths = ([args.bundle] if args.bundle else []) + list(args.compare)
    if not paths:
        raise ConfigError("give a bundle to profile, or --compare BUNDLE BUNDLE ...")
    if args.runs is None:
        args.runs = 5 if args.budget_ms is not None else 10
    if args.runs < 1 or args.warmup < 0 or args.batch < 1:
        raise ConfigError("--runs and --batch must be at least 1 and --warmup at least 0")
    if args.budget_ms is not None and args.budget_ms <= 0:
        raise ConfigError(f"--budget-ms must be positive, got {args.budget_ms:g}")
    if args.steps is not None and args.steps < 1:
        raise ConfigError("--steps must be at least 1")
    if args.plot is not None and len(paths) > 1:
        raise ConfigError("--plot draws one bundle; drop --compare or --plot")
    bundles = [Bundle.load(p) for p in paths]
    models = {json.dumps(b.manifest.model, sort_keys=True) for b in bundles}
    if len(models) > 1 and args.budget_ms is not None:
        raise ConfigError("--budget-ms compares bundles of one model; these bundles hold different models")
    height, width = input_size(args.frame_resolution, bundles[0])
    frame = load_frame(args.image, height, width)
    opener = _Opener(args, backend_flags, bundles)
    base = SampleOptions(steps=args.steps, solver=args.solver, seed=args.seed)
    if args.budget_ms is not None:
        return _budget(args, opener, bundles, frame, base)

    total = len(bundles) * (args.warmup + args.runs)
    with (
        ExitStack() as stack,
        tqdm(total=total, desc="profiling", unit="run", disable=args.quiet, file=sys.stderr) as bar,
    ):
        runtimes = [stack.enter_context(opener(i)) for i in range(len(bundles))]
        for runtime in runtimes:
            runtime.check_size(height, width)
        configs = [(runtime, base) for runtime in runtimes]
        reports = profile_many(configs, frame, args.runs, args.warmup, args.batch, bar.update)
        if not args.no_roofline:
            try:
                for report, runtime in zip(reports, runtimes, strict=True):
                    add_roofline(report, runtime, base)
            except LinearSRError as exc:  # the timings stand without it
                print(f"{PROG}: roofline left out: {exc}", file=sys.stderr)
    if args.plot is not None:
        plot_report(reports[0], args.plot)
    rows = compare_rows(reports, bundles) if len(reports) > 1 else None
    if args.json:
        print(to_json({"reports": [r.to_dict() for r in reports], "compare": rows}))
        return 0
    if rows is None:
        print(reports[0].table())
    else:
        print(format_compare(rows))
        print(f"speed-up: against the first bundle; {reports[0].table().splitlines()[-1]}")
    if args.plot is not None:
        print(f"plot: {args.plot}")
    return 0


def _budget(args, opener: _Opener, bundles: list, frame, base) -> int:
    from tqdm import tqdm

    from linearsr_edge.profiling import budget_search, format_budget, to_json

    steps = parse_steps(args.try_steps)
    tiles = [None, *parse_steps(args.try_tiles, "--try-tiles")] if args.try_tiles else [None]
    runs = args.runs
    h, w = frame.shape[:2]
    s = bundles[0].cfg.upscale
    total = len(bundles) * len(steps) * len(tiles) * (args.warmup + runs)
    with ExitStack() as stack, tqdm(total=total, desc="budget", unit="run", disable=args.quiet, file=sys.stderr) as bar:
        runtimes = [stack.enter_context(opener(i)) for i in range(len(bundles))]
        answer = budget_search(
            runtimes, frame, steps, args.budget_ms, base, runs, args.warmup, bar.update, args.budget_stat, tiles
        )
    if args.json:
        print(to_json(answer.to_dict()))
        return 0 if answer.best is not None else EXIT_OVER_BUDGET
    print(f"budget {args.budget_ms:g} ms per frame ({args.budget_stat}): {w * s}x{h * s} output from a {w}x{h} frame")
    print(format_budget(answer))
    best = answer.best
    if best is None:
        fastest = min(answer.rows, key=lambda r: r.p50_ms)
        print(
            f"nothing measured fits {args.budget_ms:g} ms ({args.budget_stat}): the fastest is {fastest.bundle} at "
            f"{fastest.steps} step(s), p50 {fastest.p50_ms:.1f} ms, p95 {fastest.p95_ms:.1f} ms. "
            + over_budget_advice(fastest, args.budget_ms)
        )
        return EXIT_OVER_BUDGET
    i = [str(b.path) for b in bundles].index(best.bundle)
    quality = "the reference itself"
    if best.quality_db != float("inf"):
        quality = f"{best.quality_db:.2f} dB against the reference"
    frame_arg = str(args.image) if args.image else f"FRAME_{w}x{h}.png"
    words = ["linearsr-upscale", frame_arg, "-o", "out.png", "--bundle", best.bundle, "--steps", str(best.steps)]
    if best.tile is not None:
        words += ["--tile", str(best.tile)]
    if args.solver != "euler":
        words += ["--solver", args.solver]
    if args.backend != "auto":
        words += ["--backend", args.backend]
    words += [*opener.flags_for(i), "--warmup", str(max(1, args.warmup))]
    tiled = f", tiles of {best.tile} px" if best.tile is not None else ""
    print(
        f"best quality within {args.budget_ms:g} ms: {best.target} ({best.bundle}) at {best.steps} step(s){tiled}, "
        f"p50 {best.p50_ms:.1f} ms (p95 {best.p95_ms:.1f}), {quality}"
    )
    print(f"  command: {shlex.join(words)}" + ("" if args.image else f"  (any {w}x{h} frame)"))
    print(
        f"  python:  SRRuntime.load({best.bundle!r}, backend={opener.infos[i].name!r}, "
        f"options={options_repr(opener.options[i])}).upscale(frame, SampleOptions(steps={best.steps}"
        + (f", solver={args.solver!r}" if args.solver != "euler" else "")
        + ")"
        + (f", tiling=True, tile={best.tile}" if best.tile is not None else "")
        + ")"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
