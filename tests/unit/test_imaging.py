from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from linearsr_edge.errors import ImageError
from linearsr_edge.pipeline.imaging import pad_to_multiple, read_image, write_image


def test_modes_are_converted(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (8, 8, 3) and np.array_equal(out[..., 0], gray) and np.array_equal(out[..., 2], gray)

    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top opaque red, bottom transparent -> white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out[0, 0].tolist() == [200, 0, 0] and out[3, 3].tolist() == [255, 255, 255]

    deep = np.arange(16, dtype=np.uint16).reshape(4, 4) * 4369  # 0 .. 65535
    Image.fromarray(deep).save(tmp_path / "d16.png")
    out = read_image(tmp_path / "d16.png")
    assert out.dtype == np.uint8 and out[0, 0, 0] == 0 and out[3, 3, 0] == 255 and out[2, 0, 0] == 136


def test_bad_files(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        read_image(tmp_path / "none.png")
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(ImageError, match="not an image"):
        read_image(tmp_path / "t.txt")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 7).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="corrupt or truncated"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(ImageError, match="above the input limit"):
        read_image(tmp_path / "full.png", max_pixels=100)
    with pytest.raises(ImageError, match="folder"):
        read_image(tmp_path)


def test_write_is_atomic_and_checks_the_target(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    write_image(tmp_path / "o.png", img)
    assert read_image(tmp_path / "o.png").shape == (4, 4, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]  # no temporary left behind
    with pytest.raises(ImageError, match="format"):
        write_image(tmp_path / "o.xyz", img)
    with pytest.raises(ImageError, match="does not exist"):
        write_image(tmp_path / "no" / "o.png", img)


def test_pad_reflects_and_reports_the_original_size():
    x = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    padded, size = pad_to_multiple(x, 4)
    assert padded.shape == (2, 4, 8) and size == (3, 5)
    assert np.array_equal(padded[:, :3, :5], x)
    assert np.array_equal(padded[:, 3, :5], x[:, 1, :])  # reflect
