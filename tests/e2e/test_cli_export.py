"""``linearsr-export`` front end: help, refusals, and an export interrupted part-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from linearsr_edge.bundle import BundleWriter
from linearsr_edge.cli.export import main
from tests.helpers import export_args, tiny_model_folder

pytest.importorskip("onnxruntime", reason="requires onnxruntime (the onnx extra)")


def test_help_lists_registered_targets():
    out = subprocess.run(
        [sys.executable, "-m", "linearsr_edge.cli.export", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "onnx-fp32" in out and "--max-resolution" in out and "--overwrite" in out


def test_unknown_target_and_non_empty_out(tmp_path, capsys):
    assert main(["--target", "onnx-fp3", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'onnx-fp32'" in err and "Traceback" not in err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    model = tiny_model_folder(tmp_path / "m")
    assert main(["--target", "onnx-fp32", "--checkpoint", str(model), "--out", str(busy), "-q"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert (
        main(
            [
                "--target",
                "onnx-fp32",
                "--checkpoint",
                str(model),
                "--out",
                str(tmp_path / "b"),
                "--max-resolution",
                "big",
            ]
        )
        == 2
    )
    assert "resolution must look like 1024x768" in capsys.readouterr().err


def _start_export(model, out, parent):
    cmd = [sys.executable, "-m", "linearsr_edge.cli.export", *export_args(model, out)]
    # A terminal user's Ctrl-C: the child starts with SIGINT's default disposition even where this test
    # runs in a background job, whose shell makes it (and every child) ignore SIGINT.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 240
    while time.time() < deadline:  # wait until the first artifact is on disk, then interrupt
        if any(parent.glob(".linearsr-tmp-*/expert_0.onnx")):
            return proc
        if proc.poll() is not None:
            pytest.fail(f"export ended before it could be interrupted: {proc.stderr.read().decode()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("export never wrote its first artifact")


def test_interrupted_export_leaves_no_bundle(tmp_path):
    model = tiny_model_folder(tmp_path / "m")
    parent = tmp_path / "bundles"
    parent.mkdir()
    out = parent / "b"

    proc = _start_export(model, out, parent)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: cleaned up at once, exit 130
    assert proc.wait(60) == 130
    assert not out.exists()
    assert not list(parent.glob(".linearsr-tmp-*"))

    proc = _start_export(model, out, parent)
    proc.kill()  # SIGKILL: no cleanup possible, but the destination is never half-written
    proc.wait(60)
    assert not out.exists()
    stale = list(parent.glob(".linearsr-tmp-*"))
    assert stale
    BundleWriter(out).abort()  # the next export removes temporaries of dead processes
    assert not any(p.exists() for p in stale)
    assert os.listdir(parent) == []
