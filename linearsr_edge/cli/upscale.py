"""``linearsr-upscale``: super-resolve one image with the demo model, a model folder or an exported bundle."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from linearsr_edge.cli.common import add_backend_flags, backend_options, run_cli, version_string
from linearsr_edge.errors import BackendUnavailableError, ConfigError, ImageError
from linearsr_edge.options import given_flags, positive_int
from linearsr_edge.pipeline.imaging import DEFAULT_MAX_OUTPUT_PIXELS, read_image, write_image
from linearsr_edge.pipeline.process import SampleOptions
from linearsr_edge.pipeline.session import choose_backend, describe_settings

PROG = "linearsr-upscale"


def _demo_tags() -> list[str]:
    """The demo model's tags, from its config (no weights are loaded)."""
    import json

    from linearsr_edge.demo import DEMO_DIR
    from linearsr_edge.tags import NULL_TAG

    try:
        return [t for t in json.loads((DEMO_DIR / "config.json").read_text()).get("tags", []) if t != NULL_TAG]
    except (OSError, ValueError):
        return []


def build_parser() -> argparse.ArgumentParser:
    tags = _demo_tags()
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Super-resolve an image with LinearSR. With --bundle it runs an exported bundle on its "
        "backend (no PyTorch needed); with --model or neither, the PyTorch reference of a model folder or of the "
        "demo model shipped in the package (4x, 4 SNR experts).",
        epilog=(f"demo model tags: {' '.join(tags)}\n" if tags else "")
        + "example: linearsr-upscale photo.png -o photo_x4.png --tags portrait outdoor",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--version", action="version", version=version_string(PROG))
    ap.add_argument(
        "input", type=Path, nargs="?", help="input image (PNG, JPEG, ...); grayscale, alpha, 16-bit are converted"
    )
    ap.add_argument("-o", "--output", type=Path, help="output image; the suffix picks the format")
    ap.add_argument("--list-tags", action="store_true", help="print the tags the model or bundle knows, and exit")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--model", type=Path, help="a LinearSR model folder (config.json + experts.safetensors)")
    src.add_argument("--bundle", type=Path, help="an exported bundle folder (linearsr-export)")
    ap.add_argument("--backend", default="auto", help="runtime backend for --bundle (default: auto)")
    ap.add_argument(
        "--residency",
        default="auto",
        metavar="auto|all|one|BYTES",
        help="--bundle: every expert loaded (all), one at a time (one), within a byte budget, or auto (default): "
        "all when the bundle fits this device profile's memory budget",
    )
    ap.add_argument(
        "--steps", type=positive_int, help="sampling steps (default: the model's; more steps = more detail, lower PSNR)"
    )
    ap.add_argument("--start-sigma", type=float, help="noise level to start from, in (0, 1]")
    ap.add_argument("--solver", choices=("euler", "heun"), default="euler", help="ODE solver (heun: 2 NFE/step)")
    ap.add_argument("--tags", nargs="*", default=[], help="scene tags, e.g. portrait outdoor (see --list-tags)")
    ap.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    ap.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_OUTPUT_PIXELS,
        help=f"refuse outputs above this many pixels (default {DEFAULT_MAX_OUTPUT_PIXELS:,})",
    )
    ap.add_argument(
        "--tile",
        type=positive_int,
        metavar="PX",
        help="--bundle: upscale in overlapping latent tiles of this output size (frames above the bundle's "
        "profile are tiled anyway, with the device profile's tile size)",
    )
    ap.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="untimed upscales of the same image first, so the summary shows the warm per-frame latency "
        "(what an application that keeps the runtime loaded sees; default 0)",
    )
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    add_backend_flags(ap, note="--bundle, ")
    return ap


def check_output_path(path: Path) -> None:
    """Fail before any work if the output cannot be written."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ImageError(f"output {path} is a folder; give a file name such as {path / 'out.png'}")
    if not parent.is_dir():
        raise ImageError(f"output folder does not exist: {parent}")
    try:  # the real test of writability (os.access says yes to root everywhere)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ImageError(f"output {path} is not writable: {exc.strerror or exc}") from None
    from PIL import Image

    if path.suffix.lower() not in Image.registered_extensions():
        raise ImageError(f"cannot tell the image format from the output name {path.name!r}; use .png or .jpg")


def load_upscaler(args: argparse.Namespace, backend_flags: list[str] | None = None):
    """An `SRRuntime`: the bundle on its backend, or the PyTorch reference of a model folder / the demo.

    ``backend_flags``: the backend-option flags given; each must apply to the chosen backend."""
    backend_flags = backend_flags or []
    if args.bundle is not None:
        from linearsr_edge.bundle import Bundle
        from linearsr_edge.runtime import SRRuntime

        bundle = Bundle.load(args.bundle)
        info = choose_backend(bundle.format, args.backend)
        options = backend_options(info, args, backend_flags)
        residency = int(args.residency) if args.residency.isdigit() else args.residency
        return SRRuntime.load(bundle, backend=info.name, options=options, residency=residency, build="if-needed")
    if backend_flags:
        raise ConfigError(f"{', '.join(backend_flags)}: backend options apply to --bundle only")
    try:
        from linearsr_edge.demo import load_demo
        from linearsr_edge.reference import load_model_folder
    except ImportError as exc:
        raise BackendUnavailableError(
            f"running a model without --bundle needs the PyTorch reference ({exc.name} is missing): "
            "pip install 'linearsr-edge[torch]', or export a bundle and pass --bundle"
        ) from None
    return (load_model_folder(args.model) if args.model else load_demo()).reference()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_cli(lambda: _run(args, given_flags(parser, args)), PROG)


def _list_tags(args: argparse.Namespace) -> int:
    if args.bundle is not None:
        from linearsr_edge.bundle import Bundle

        vocab = Bundle.load(args.bundle).tags()
        names = [] if vocab is None else list(vocab.names)
    elif args.model is not None:
        from linearsr_edge.model.folder import read_folder_config

        names = read_folder_config(args.model).get("tags") or []
    else:
        names = _demo_tags()
    from linearsr_edge.tags import NULL_TAG

    names = [n for n in names if n != NULL_TAG]
    print(" ".join(names) if names else "(this model takes no tags)")
    return 0


def _run(args: argparse.Namespace, backend_flags: list[str] | None = None) -> int:
    if args.list_tags:
        return _list_tags(args)
    if args.input is None or args.output is None:
        raise ConfigError("give an input image and -o OUTPUT (or --list-tags)")
    if args.warmup < 0:
        raise ConfigError("--warmup must be 0 or more")
    if args.tile is not None and args.bundle is None:
        raise ConfigError("--tile applies to --bundle")
    check_output_path(args.output)
    max_in = max(1, args.max_pixels // 4)
    image = read_image(args.input, max_pixels=max_in)
    t0 = time.perf_counter()
    upscaler = load_upscaler(args, backend_flags)
    load_s = time.perf_counter() - t0
    opts = SampleOptions(
        steps=args.steps,
        start_sigma=args.start_sigma,
        solver=args.solver,
        seed=args.seed,
        tags=tuple(args.tags),
        max_pixels=args.max_pixels,
    )
    if args.tile is not None:
        upscaler.tile_size(args.tile)  # a tile this bundle cannot run is refused before any work
    plan = upscaler.process.plan(opts)
    quiet_warmup = args.quiet or not args.warmup
    tiling = {} if args.tile is None else {"tiling": True, "tile": args.tile}
    for _ in tqdm(range(args.warmup), desc="warm-up", unit="run", disable=quiet_warmup, file=sys.stderr):
        upscaler.upscale(image, opts, **tiling)
    with tqdm(total=len(plan), desc="denoising", unit="step", disable=args.quiet, file=sys.stderr) as bar:
        result = upscaler.upscale(image, opts, on_step=lambda i: bar.update(1), **tiling)
    write_image(args.output, result.image)
    if not args.quiet:
        h, w = image.shape[:2]
        oh, ow = result.image.shape[:2]
        per = ", ".join(f"e{k}:{n}" for k, n in enumerate(result.steps_per_expert))
        tiled = f" | tiled: {result.tiles} tiles of {result.tile_px} px" if result.tiles else ""
        print(
            f"{args.input.name} {w}x{h} -> {args.output} {ow}x{oh}{tiled} | {len(result.plan)} steps "
            f"({result.plan.nfe} NFE; per expert {per}) | {result.seconds:.3f} s (+{load_s:.2f} s load"
            f"{f', {args.warmup} warm-up runs' if args.warmup else ''}) | "
            f"{describe_settings(upscaler.backend_settings())}"
        )
    return 0


def console() -> None:
    """The ``linearsr-upscale`` script: `main`, then the process ends without tearing the runtime down."""
    from linearsr_edge.cli.common import console as run

    run(main)


if __name__ == "__main__":
    console()
