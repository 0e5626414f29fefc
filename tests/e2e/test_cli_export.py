"""``linearsr-export`` front end: help, refusals, and an export interrupted part-way."""

from __future__ import annotations

import json
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


# -- what the installed export stack offers on this device (needs the export extras: not the unit lane) --
def test_doctor_recommends_an_installed_target_and_says_why(capsys):
    from linearsr_edge.cli.doctor import main
    from linearsr_edge.targets import get_target

    assert main(["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    target = data["recommended_target"]
    assert target is not None and get_target(target).available and data["reason"]
    from linearsr_edge.machine import cpu_isa

    assert data["device"]["isa"] == cpu_isa()[1]
    assert {b["name"] for b in data["backends"]} >= {"onnxruntime", "openvino"}
    rates = data["rates"]
    assert rates["sgemm_gflops"] == max(rates["sgemm_by"].values()) > 0.1 and "numpy" in rates["sgemm_by"]
    assert rates["threads"] == data["device"]["cores"]
    assert main([]) == 0
    out = capsys.readouterr().out
    assert f"export:   {target}:" in out and f"linearsr-export --target {target}" in out
    assert f"limit:    SGEMM {data['rates']['sgemm_gflops']:.1f} GFLOP/s" in out  # the cached rate, printed


def test_export_target_auto_names_the_choice_and_why(caplog):
    import logging

    from linearsr_edge.cli.export import auto_target
    from linearsr_edge.devices import detect
    from linearsr_edge.devices.profiles import match_profile
    from linearsr_edge.targets import get_target

    logger = logging.getLogger("linearsr_edge")
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    try:
        name = auto_target()
    finally:
        logger.removeHandler(caplog.handler)
    assert get_target(name).available and name in match_profile(detect()).targets
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("auto:"))
    assert line.startswith(f"auto: {name} on ") and "because" in line


def test_export_writes_a_triton_repository_with_its_queue_policy(tmp_path, capsys):
    """``--triton-repo``: the repository of the bundle just written, with the queue policy sized here."""
    from linearsr_edge.serving.triton import versions

    model = tiny_model_folder(tmp_path / "m")
    repo = tmp_path / "models"
    assert main(export_args(model, tmp_path / "b", "--triton-repo", str(repo))) == 0
    out = capsys.readouterr().out
    assert "queue: at most 8 requests wait, none longer than" in out and f"wrote Triton repository {repo}" in out
    config = (repo / "linearsr" / "config.pbtxt").read_text()
    assert "timeout_action: REJECT" in config and "max_queue_size: 8" in config and versions(repo) == [1]
    settings = json.loads((repo / "linearsr" / "1" / "linearsr.json").read_text())
    assert settings["bundle"] == str((tmp_path / "b").resolve())
