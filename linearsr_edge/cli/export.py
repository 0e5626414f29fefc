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
    ap.add_argument("--parity-image", type=Path, help="photo for the end-to-end check (default: the demo sample)")
    ap.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run(args), PROG)


def _run(args: argparse.Namespace) -> int:
    from linearsr_edge.export import ExportOptions, export_bundle
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
        overwrite=args.overwrite,
        parity_image=args.parity_image,
        progress=not args.quiet,
    )
    bundle, rows = export_bundle(opts)
    print(format_report(rows))
    print(f"wrote {bundle.path} ({bundle.target}, {len(bundle.component_names())} components)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
