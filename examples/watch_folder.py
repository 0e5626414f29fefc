"""Watch a folder and upscale every image that lands in it (an NVR's snapshot folder, say).

    python examples/watch_folder.py incoming/ --out upscaled/ --bundle bundles/onnx-int8
    python examples/watch_folder.py incoming/ --out upscaled/ --bundle B --once   # what is there now, then exit

New files are picked up when their size stops changing (a camera may still be writing them); each
result is written atomically as ``<name>_x4.png`` (the model's scale), so a reader never sees half a file. A file that
cannot be read or upscaled is reported and left alone; the watch goes on.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def pending(folder: Path, out: Path, sizes: dict[Path, int], suffix: str) -> list[Path]:
    """Images in ``folder`` without a result in ``out`` whose size is the same as at the last look."""
    ready = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in SUFFIXES or (out / f"{path.stem}{suffix}").exists():
            continue
        size = path.stat().st_size
        if sizes.get(path) == size:
            ready.append(path)
        sizes[path] = size
    return ready


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between looks (default 1)")
    ap.add_argument("--once", action="store_true", help="process what is there, then exit")
    args = ap.parse_args(argv)

    from linearsr_edge import SRRuntime
    from linearsr_edge.errors import LinearSRError
    from linearsr_edge.pipeline.imaging import read_image, write_image

    args.out.mkdir(parents=True, exist_ok=True)
    sizes: dict[Path, int] = {}
    done = 0
    with SRRuntime.load(args.bundle) as runtime:
        suffix = f"_x{runtime.cfg.upscale}.png"
        while True:
            ready = pending(args.folder, args.out, sizes, suffix)
            if args.once and not ready:
                ready = pending(args.folder, args.out, sizes, suffix)  # a second look settles the sizes
            for path in ready:
                try:
                    result = runtime.upscale(read_image(path))
                    write_image(args.out / f"{path.stem}{suffix}", result.image)
                    done += 1
                    print(f"{path.name} -> {path.stem}{suffix} ({result.seconds:.2f} s)")
                except LinearSRError as exc:
                    print(f"{path.name}: skipped ({exc})", file=sys.stderr)
                    sizes.pop(path, None)
            if args.once:
                print(f"{done} images upscaled")
                return 0
            time.sleep(args.interval)


if __name__ == "__main__":
    raise SystemExit(main())
