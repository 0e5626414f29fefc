"""``linearsr-export``: export a LinearSR model to a verified artifact bundle for one target."""

from __future__ import annotations

import argparse
from pathlib import Path

from linearsr_edge.cli.common import run_cli
from linearsr_edge.exporters import all_targets
from linearsr_edge.specs import Profile, parse_resolution

PROG = "linearsr-export"


def _targets_help() -> str:
    lines = []
    for t in all_targets():
        note = "" if t.available else f"  [needs: pip install 'linearsr-edge[{t.extra}]']"
        lines.append(f"  {t.name:<14} {t.description}{note}")
    return "targets:\n" + "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Export every expert denoiser, the encoder and the decoder to one bundle folder, check each "
        "against PyTorch and end to end on a real photo, and record the report in the manifest.",
        epilog=_targets_help() + "\n\nexample: linearsr-export --target onnx-fp32 --out bundles/demo-onnx",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--target", required=True, metavar="NAME", help="export target (see the list below)")
    ap.add_argument("--checkpoint", type=Path, help="a LinearSR model folder (default: the bundled demo model)")
    ap.add_argument("--out", type=Path, help="bundle folder to create (default: bundles/<target>)")
    ap.add_argument(
        "--max-resolution",
        default="1024x1024",
        metavar="WxH",
        help="largest output image the bundle accepts (default 1024x1024)",
    )
    ap.add_argument("--min-resolution", default="64x64", metavar="WxH", help="smallest output image (default 64x64)")
    ap.add_argument("--opt-resolution", default="256x256", metavar="WxH", help="output size to optimise for")
    ap.add_argument("--max-batch", type=int, default=4, help="largest batch the bundle accepts (default 4)")
    ap.add_argument(
        "--tags",
        nargs="*",
        default=[],
        help="tags to cache (with --cond-file), or to check against the model's own vocabulary",
    )
    ap.add_argument("--cond-file", type=Path, help=".npz of precomputed tag embeddings, one [D] array per tag name")
    ap.add_argument("--text-encoder", type=Path, help="local transformers folder that encodes --tags at export time")
    ap.add_argument("--parity-image", type=Path, help="photo for the end-to-end check (default: the demo sample)")
    ap.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    q = ap.add_argument_group("FP16 / INT8: calibration and quality gates")
    q.add_argument(
        "--calib-dir",
        type=Path,
        help="your own photos for calibration and the gates (default: the "
        "demo samples); the last --heldout-images files are held out for the gates",
    )
    q.add_argument("--calib-samples", type=int, default=16, help="inputs recorded per expert, in its band (16)")
    q.add_argument("--calib-steps", type=int, help="sampling steps while recording (default: 2x the model's)")
    q.add_argument("--heldout-images", type=int, default=2, help="images held out for the quality gates (2)")
    q.add_argument(
        "--pooled-calibration",
        action="store_true",
        help="ablation: calibrate every expert on inputs pooled over all steps, not its own band",
    )
    q.add_argument("--seed", type=int, default=0, help="calibration seed (0)")
    q.add_argument("--min-psnr", type=float, help="end-to-end PSNR gate, dB (default: fp16 45, int8 35)")
    q.add_argument("--min-expert-sqnr", type=float, help="per-expert SQNR gate, dB (default: fp16 40, int8 5)")
    q.add_argument(
        "--int8-ops",
        nargs="+",
        default=["MatMul", "Gemm", "Conv"],
        metavar="OP",
        help="op types to quantize (default: MatMul Gemm Conv; adding Mul/Add costs ~17 %% error)",
    )
    q.add_argument(
        "--int8-activations",
        choices=("uint8", "int8"),
        default="uint8",
        help="activation type (default uint8: faster on x86)",
    )
    q.add_argument("--int8-method", choices=("minmax", "entropy", "percentile"), default="minmax")
    q.add_argument(
        "--int8-accurate",
        action="store_true",
        help="keep quantized ops' outputs and their neighbours in FP32: ~+4 dB SQNR, no speed-up on x86",
    )
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return ap


def _thresholds(args: argparse.Namespace):
    from linearsr_edge.calibration import QualityThresholds
    from linearsr_edge.exporters import get_target

    if args.min_expert_sqnr is None and args.min_psnr is None:
        return None
    base = QualityThresholds.default(get_target(args.target).precision)
    return QualityThresholds(
        args.min_expert_sqnr if args.min_expert_sqnr is not None else base.expert_sqnr_db,
        args.min_psnr if args.min_psnr is not None else base.e2e_psnr_db,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args), PROG)


def _run(args: argparse.Namespace) -> int:
    from linearsr_edge.calibration import CalibrationOptions, GateRow, format_gates
    from linearsr_edge.export import ExportOptions, export_bundle
    from linearsr_edge.exporters.onnx_precision import Int8Policy
    from linearsr_edge.parity import format_report

    profile = Profile(
        min_hw=parse_resolution(args.min_resolution),
        opt_hw=parse_resolution(args.opt_resolution),
        max_hw=parse_resolution(args.max_resolution),
        batch=(1, 1, max(1, args.max_batch)),
    )
    opts = ExportOptions(
        target=args.target,
        out=args.out or Path("bundles") / args.target,
        checkpoint=args.checkpoint,
        profile=profile,
        tags=tuple(args.tags),
        cond_file=args.cond_file,
        text_encoder=args.text_encoder,
        overwrite=args.overwrite,
        parity_image=args.parity_image,
        progress=not args.quiet,
        calib_dir=args.calib_dir,
        calibration=CalibrationOptions(
            samples_per_expert=args.calib_samples,
            heldout_images=args.heldout_images,
            steps=args.calib_steps,
            seed=args.seed,
            pooled=args.pooled_calibration,
        ),
        thresholds=_thresholds(args),
        int8_policy=Int8Policy(
            op_types=tuple(args.int8_ops),
            activation_type=args.int8_activations,
            method=args.int8_method,
            fuse_outputs=not args.int8_accurate,
        ),
    )
    bundle, rows = export_bundle(opts)
    print(format_gates(rows) if rows and isinstance(rows[0], GateRow) else format_report(rows))
    print(f"wrote {bundle.path} ({bundle.target}, {len(bundle.component_names())} components)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
