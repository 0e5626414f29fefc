"""``linearsr-upscale`` end to end on a tiny model folder, and every bad-input path."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from linearsr_edge.cli.upscale import main
from linearsr_edge.model.codec import PixelUnshuffleCodec
from linearsr_edge.model.experts import SNRExperts
from linearsr_edge.model.folder import save_model_folder
from linearsr_edge.tags import NULL_TAG, TagVocabulary
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = tiny_config()
    tags = TagVocabulary(("portrait", NULL_TAG), np.random.default_rng(0).standard_normal((2, 8)))
    return save_model_folder(tmp_path_factory.mktemp("m"), SNRExperts(cfg), PixelUnshuffleCodec(2), tags)


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(path)
    return path


def test_upscales_and_summarises(model_dir, photo, tmp_path, capsys):
    out = tmp_path / "out.png"
    rc = main([str(photo), "-o", str(out), "--model", str(model_dir), "--tags", "portrait", "--seed", "3"])
    assert rc == 0
    assert Image.open(out).size == (24, 20)
    text = capsys.readouterr()
    assert "12x10 -> " in text.out and "24x20" in text.out and "4 steps" in text.out
    assert "e0:1, e1:1, e2:1, e3:1" in text.out
    assert "denoising" in text.err  # progress bar


def _err(capsys) -> str:
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.png", "not found"),
        (lambda d: (d / "x.png").write_text("not an image") and d / "x.png", "not an image"),
        (lambda d: _truncated(d), "corrupt or truncated"),
        (lambda d: _image(d, (1, 1)), ">= 2 pixels"),
    ],
    ids=["missing", "not-image", "truncated", "1x1"],
)
def test_bad_inputs_exit_nonzero_with_a_message(model_dir, tmp_path, capsys, make, message):
    src = make(tmp_path)
    rc = main([str(src), "-o", str(tmp_path / "o.png"), "--model", str(model_dir)])
    assert rc == 2
    err = _err(capsys)
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_too_large_is_refused_before_reading(model_dir, tmp_path, capsys):
    src = _image(tmp_path, (300, 300))
    rc = main([str(src), "-o", str(tmp_path / "o.png"), "--model", str(model_dir), "--max-pixels", "100000"])
    err = _err(capsys)
    assert rc == 2 and "above the input limit" in err and "corrupt" not in err
    assert "300x300 = 0.09 MP, above the input limit of 0.025 MP" in err  # 3 significant digits, never 0.0 MP


def test_list_tags_and_version(model_dir, capsys):
    assert main(["--list-tags", "--model", str(model_dir)]) == 0
    assert capsys.readouterr().out.strip() == "portrait"
    assert main(["--list-tags"]) == 0
    demo_tags = capsys.readouterr().out.split()
    assert "portrait" in demo_tags and "<null>" not in demo_tags
    out = subprocess.run(
        [sys.executable, "-m", "linearsr_edge.cli.upscale", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "demo model tags: " + " ".join(demo_tags) in out
    assert main(["-o", "x.png"]) == 2 and "give an input image" in _err(capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; the folder-missing case covers it")
def test_unwritable_output(model_dir, photo, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main([str(photo), "-o", str(locked / "o.png"), "--model", str(model_dir)]) == 2
    assert "not writable" in _err(capsys)


@pytest.mark.parametrize(
    ("target", "message"), [("nofolder/o.png", "does not exist"), ("o.xyz", "format"), (".", "is a folder")]
)
def test_bad_output_paths(model_dir, photo, tmp_path, capsys, target, message):
    assert main([str(photo), "-o", str(tmp_path / target), "--model", str(model_dir)]) == 2
    assert message in _err(capsys)


def test_unwritable_output_even_as_root(model_dir, photo, capsys):
    # /proc is not writable for anyone, root included
    assert main([str(photo), "-o", "/proc/linearsr.png", "--model", str(model_dir)]) == 2
    err = _err(capsys)
    assert "not writable" in err and "denoising" not in err  # refused before any work


def test_unknown_tag_and_bad_model(model_dir, photo, tmp_path, capsys):
    assert main([str(photo), "-o", str(tmp_path / "o.png"), "--model", str(model_dir), "--tags", "portait"]) == 2
    assert "did you mean 'portrait'" in _err(capsys)
    assert main([str(photo), "-o", str(tmp_path / "o.png"), "--model", str(tmp_path)]) == 2
    assert "no config.json" in _err(capsys)


def test_console_script_has_help():
    out = subprocess.run(
        [sys.executable, "-m", "linearsr_edge.cli.upscale", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--steps" in out and "--tags" in out and "demo model" in out


def _image(d, size):
    path = d / "small.png"
    Image.fromarray(np.zeros((*size, 3), np.uint8)).save(path)
    return path


def _truncated(d):
    path = d / "t.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def test_the_script_exits_without_teardown_and_loses_nothing(model_dir, photo, tmp_path):
    """The console script ends with os._exit after its work (closing the runtime would only free memory the OS
    takes back): the image is whole, the summary and log lines reach a pipe, atexit hooks ran, and an error
    still exits 2 with its one line."""
    out = tmp_path / "out.png"
    hook = tmp_path / "atexit-ran"
    code = (
        "import atexit, pathlib, sys; from linearsr_edge.cli.upscale import console; "
        f"atexit.register(lambda: pathlib.Path({str(hook)!r}).write_text('yes')); "
        "sys.argv[0] = 'linearsr-upscale'; console()"
    )
    argv = [str(photo), "-o", str(out), "--model", str(model_dir), "--steps", "2"]
    text = {"encoding": "utf-8", "errors": "replace"}  # the progress bar's blocks, whatever the locale
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, timeout=300, **text)
    assert done.returncode == 0, done.stderr
    assert f"-> {out} 24x20" in done.stdout and hook.read_text() == "yes"
    assert main([*argv[:2], str(tmp_path / "again.png"), *argv[3:], "-q"]) == 0  # the same call in this process
    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(tmp_path / "again.png")))
    bad = subprocess.run([sys.executable, "-c", code, "-o", str(out)], capture_output=True, timeout=120, **text)
    assert bad.returncode == 2 and "give an input image" in bad.stderr
