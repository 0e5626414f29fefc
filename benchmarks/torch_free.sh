#!/usr/bin/env bash
# The runtime-only install: PyTorch must not be importable, and a bundle must run through SRRuntime and
# `linearsr-upscale --bundle`. Prints the runtime's import time and the whole command's wall time
# (median of 3). With REF_PYTHON (and REF_PYTHONPATH), the same two numbers for another install of the
# package, e.g. an older checkout with torch, and their ratios, measured in this one run.
#
#   bash benchmarks/torch_free.sh RUNTIME_VENV BUNDLE OUT.png [REF_PYTHON [REF_PYTHONPATH]]
set -euo pipefail
venv="$1" bundle="$2" out="$3" ref_py="${4:-}" ref_path="${5:-}"
py="$venv/bin/python"
photo="$(cd "$(dirname "$0")/.." && pwd)/linearsr_edge/demo/samples/astronaut_lr.png"
bundle="$(cd "$bundle" && pwd)" out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
cd /  # so that neither install's imports resolve to a source tree in the working directory

if "$py" -c "import torch" 2>/dev/null; then
    echo "torch-free check FAILED: torch is importable in $venv" >&2
    exit 1
fi
"$py" - "$bundle" "$photo" <<'PY'
import sys

import numpy as np
from PIL import Image

from linearsr_edge import SRRuntime

rt = SRRuntime.load(sys.argv[1])
image = np.asarray(Image.open(sys.argv[2]).convert("RGB"))
sr = rt.upscale(image).image
assert sr.shape == (image.shape[0] * 4, image.shape[1] * 4, 3) and sr.std() > 10, sr.shape
assert "torch" not in sys.modules
print(f"torch-free SRRuntime: {image.shape[1]}x{image.shape[0]} -> {sr.shape[1]}x{sr.shape[0]} on {rt.backend}")
PY
"$venv/bin/linearsr-upscale" "$photo" -o "$out" --bundle "$bundle" -q
test -s "$out"

median3() { sort -n | sed -n 2p; }
import_s() {  # python, pythonpath, module statement
    for _ in 1 2 3; do
        PYTHONPATH="$2" "$1" -c "import time; t = time.perf_counter(); $3; print(time.perf_counter() - t)"
    done | median3
}
command_s() {  # python, pythonpath
    for _ in 1 2 3; do
        s=$(date +%s.%N)
        PYTHONPATH="$2" "$1" -m linearsr_edge.cli.upscale "$photo" -o "$out" --bundle "$bundle" -q
        python3 -c "import sys; print(float(sys.argv[1]) - float(sys.argv[2]))" "$(date +%s.%N)" "$s"
    done | median3
}
imp=$(import_s "$py" "" "from linearsr_edge.runtimes import SRRuntime")
cmd=$(command_s "$py" "")
echo "torch-free: import SRRuntime ${imp} s, linearsr-upscale --bundle (128x128 -> 512x512) ${cmd} s"
if [ -n "$ref_py" ]; then
    rimp=$(import_s "$ref_py" "$ref_path" "from linearsr_edge.runtimes import SRRuntime")
    rcmd=$(command_s "$ref_py" "$ref_path")
    echo "reference install: import SRRuntime ${rimp} s, command ${rcmd} s"
    python3 -c "import sys; a, b, c, d = map(float, sys.argv[1:]); print(f'ratios (torch-free / reference): import {a / b:.3f}, command {c / d:.3f}')" "$imp" "$rimp" "$cmd" "$rcmd"
fi
echo "torch-free runtime: OK"
