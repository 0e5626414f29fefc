"""The examples run: a video it writes itself through examples/video_upscale.py, and a watched folder."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_video_example(tiny_bundles, tmp_path, capsys):
    cv2 = pytest.importorskip("cv2", reason="the video example needs opencv (pip install 'linearsr-edge[video]')")
    src = tmp_path / "in.avi"
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (24, 16))
    rng = np.random.default_rng(0)
    for _ in range(6):
        writer.write(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8))
    writer.release()
    video = _load("video_upscale")
    bundle = str(tiny_bundles("onnx-fp32").bundle.path)
    out = tmp_path / "out.mp4"
    assert video.main([str(src), "-o", str(out), "--bundle", bundle, "--frames", "4", "--threads", "1"]) == 0
    assert "4 frames" in capsys.readouterr().out
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 4 and frames[0].shape == (32, 48, 3)
    roi_out = tmp_path / "roi.mp4"
    assert video.main([str(src), "-o", str(roi_out), "--bundle", bundle, "--roi", "4,2,12,10", "--frames", "2"]) == 0
    cap = cv2.VideoCapture(str(roi_out))
    ok, frame = cap.read()
    assert ok and frame.shape == (20, 24, 3)


def test_watch_folder_example(tiny_bundles, tmp_path, capsys):
    from linearsr_edge.pipeline.imaging import read_image
    from tests.helpers import write_photo

    watch = _load("watch_folder")
    incoming, out = tmp_path / "in", tmp_path / "out"
    incoming.mkdir()
    write_photo(incoming / "a.png", 16, 20, seed=1)
    write_photo(incoming / "b.png", 18, 22, seed=2)
    (incoming / "broken.png").write_bytes(b"not a png")
    bundle = str(tiny_bundles("onnx-fp32").bundle.path)
    assert watch.main([str(incoming), "--out", str(out), "--bundle", bundle, "--once"]) == 0
    captured = capsys.readouterr()
    assert "2 images upscaled" in captured.out and "broken.png: skipped" in captured.err
    assert read_image(out / "a_x2.png").shape == (32, 40, 3)  # the tiny model's scale is 2
    assert sorted(p.name for p in out.iterdir()) == ["a_x2.png", "b_x2.png"]
