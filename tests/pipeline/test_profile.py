"""linearsr-profile: call tracing, the report's accounting, compare and budget logic, the CLI and its plot."""

from __future__ import annotations

import itertools
import json
import math
import shlex
import time

import numpy as np
import pytest

from linearsr_edge.backends.onnx.options import OrtOptions
from linearsr_edge.backends.onnx.session import OrtBackend
from linearsr_edge.cli import profile as profile_cli
from linearsr_edge.cli import upscale as upscale_cli
from linearsr_edge.pipeline.process import SampleOptions
from linearsr_edge.pipeline.session import Session
from linearsr_edge.profiling import (
    BudgetRow,
    add_roofline,
    choose,
    compare_rows,
    fit_frame,
    gate_psnr,
    profile,
    reference_order,
)
from linearsr_edge.runtime import SRRuntime


def _frame(h=24, w=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_traced_records_every_call_in_plan_order(tiny_bundles):
    with SRRuntime.load(tiny_bundles("onnx-fp32").bundle.path, backend="onnxruntime") as rt:
        image = _frame()
        rt.upscale(image)  # no trace outside the block
        with rt.traced() as calls:
            t0 = time.perf_counter()
            result = rt.upscale(image, SampleOptions(steps=3))
            whole = time.perf_counter() - t0
        rt.upscale(image)
    names = [c.component for c in calls]
    experts = [f"expert_{k}" for k in result.plan.expert]
    assert names == ["encoder", *experts, "decoder"]
    assert all(c.batch == 1 and c.seconds > 0 and c.open_seconds >= 0 for c in calls)
    assert all(a.start + a.seconds <= b.start for a, b in itertools.pairwise(calls))
    assert sum(c.seconds + c.open_seconds for c in calls) < whole


class _Delayed(Session):
    """A real session of the bundle, delayed by a known time: the profiler must put that time on it."""

    def __init__(self, inner: Session, delay: float) -> None:
        super().__init__(inner.spec)
        self.inner, self.delay, self.backend = inner, delay, inner.backend

    def _run(self, feeds):
        time.sleep(self.delay)
        return self.inner._run(feeds)


def test_profile_puts_time_where_it_was_spent(tiny_bundles):
    bundle = tiny_bundles("onnx-fp32").bundle
    delay = {"expert_0": 0.0, "expert_1": 0.030, "expert_2": 0.0, "expert_3": 0.0, "encoder": 0.0, "decoder": 0.0}

    class Delayed(OrtBackend):
        def open(self, component):
            return _Delayed(super().open(component), delay[component])

    rt = SRRuntime(Delayed(bundle, OrtOptions()))
    with rt:
        report = profile(rt, _frame(), SampleOptions(steps=4), runs=3, warmup=1)
    plan = rt.process.plan(SampleOptions(steps=4))
    per_expert = plan.steps_per_expert(bundle.cfg.num_experts)
    for k, n in enumerate(per_expert):
        name = f"expert_{k}"
        if n:
            assert report.components[name]["calls_per_image"] == n
        else:
            assert name not in report.components
    assert per_expert[1] >= 1
    assert report.components["expert_1"]["min_ms"] >= 30.0  # the sleep is inside the session
    for s in report.timeline:  # the steps of expert 1 carry its sleep
        assert s["min_ms"] >= 30.0 or s["expert"] != 1
    assert [s["expert"] for s in report.timeline] == [int(k) for k in plan.expert]
    assert report.image["p50_ms"] >= 30.0 * per_expert[1]
    assert report.image["min_ms"] <= report.image["p50_ms"] <= report.image["p95_ms"]
    assert report.outside_ms >= 0 and report.session_ms >= 30.0 * per_expert[1]
    assert report.session_ms + report.outside_ms + report.open_ms == pytest.approx(report.image["p50_ms"], rel=0.5)
    assert report.throughput_ips == pytest.approx(1e3 / report.image["p50_ms"])
    assert report.peak_rss_bytes is None or report.peak_rss_bytes > 10 * 2**20
    assert report.settings["backend"] == "onnxruntime"
    assert len(report.gantt) == len(plan) + 2
    json.dumps(report.to_dict())  # the --json form


def test_batch_counts_every_frame(tiny_bundles):
    with SRRuntime.load(tiny_bundles("onnx-fp32").bundle.path, backend="onnxruntime") as rt:
        report = profile(rt, _frame(), SampleOptions(steps=2), runs=2, warmup=0, batch=3)
    assert report.batch == 3
    assert report.components["encoder"]["calls_per_image"] == pytest.approx(1 / 3)
    assert report.throughput_ips == pytest.approx(3e3 / report.image["p50_ms"])


def test_profile_refuses_bad_counts(tiny_bundles):
    from linearsr_edge.errors import ConfigError

    path = tiny_bundles("onnx-fp32").bundle.path
    with SRRuntime.load(path, backend="onnxruntime") as rt, pytest.raises(ConfigError, match="runs >= 1"):
        profile(rt, _frame(), runs=0)


def test_fit_frame_resizes_exactly():
    out = fit_frame(_frame(20, 30), 9, 16)
    assert out.shape == (9, 16, 3) and out.dtype == np.uint8
    src = _frame(9, 16)
    assert fit_frame(src, 9, 16) is not None and np.array_equal(fit_frame(src, 9, 16), src)


def _row(name, quality, p50, fits):
    return BudgetRow(name, name, "fp32", 1, p50, p50, quality, fits)


def test_choose_best_quality_within_budget():
    rows = [_row("a", math.inf, 300, False), _row("b", 40.0, 120, True), _row("c", 40.0, 90, True)]
    rows.append(_row("d", 30.0, 50, True))
    assert choose(rows).bundle == "c"  # equal quality: the faster
    assert choose([_row("a", 50.0, 300, False)]) is None
    assert choose([_row("a", math.inf, 10, True), _row("b", 60.0, 5, True)]).bundle == "a"


def test_reference_order_puts_the_most_precise_first():
    assert reference_order(["int8", "fp16", "fp32", "fp32"]) == [2, 3, 1, 0]


def test_compare_rows_and_gate_psnr(tiny_bundles):
    fp32, int8 = tiny_bundles("onnx-fp32").bundle, tiny_bundles("onnx-int8").bundle
    reports = []
    for b in (fp32, int8):
        with SRRuntime.load(b.path, backend="onnxruntime") as rt:
            reports.append(profile(rt, _frame(), SampleOptions(steps=2), runs=2, warmup=1))
    rows = compare_rows(reports, [fp32, int8])
    assert [r["target"] for r in rows] == ["onnx-fp32", "onnx-int8"]
    assert rows[0]["speedup"] == 1.0
    assert rows[1]["speedup"] == pytest.approx(reports[0].image["p50_ms"] / reports[1].image["p50_ms"])
    on_disk = sum(p.stat().st_size for p in int8.path.rglob("*") if p.is_file())
    assert rows[1]["size_mib"] == pytest.approx(on_disk / 2**20)
    pipeline = [r for r in int8.verification.rows if r.component == "pipeline"]
    assert rows[1]["psnr_vs_fp32_db"] == gate_psnr(int8) == pipeline[-1].value
    assert math.isfinite(rows[1]["psnr_vs_fp32_db"])
    assert gate_psnr(fp32) == math.inf  # the FP32 bundle's end-to-end run was identical to the reference


# -- the command --------------------------------------------------------------------------------
def test_cli_one_bundle_json_and_plot(tiny_bundles, tmp_path, capsys):
    path = tiny_bundles("onnx-fp32").bundle.path
    png = tmp_path / "p.png"
    code = profile_cli.main(
        [str(path), "--resolution", "24x16", "--runs", "2", "--warmup", "1", "--steps", "2", "--json", "-q"]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    (report,) = data["reports"]
    assert report["input_hw"] == [16, 24] and report["output_hw"] == [32, 48] and report["steps"] == 2
    assert data["compare"] is None
    # the roofline: FLOPs counted from the config at the profiled latent, rate from the p50, share of the SGEMM
    from linearsr_edge.profiling.roofline import expert_flops

    roof = report["roofline"]
    bundle = tiny_bundles("onnx-fp32").bundle
    assert roof["latent_hw"] == [16, 24] and roof["cond_len"] == 1 and roof["sgemm_gflops"] > 0  # factor 2, scale 2
    flops = expert_flops(bundle.cfg, (16, 24), 1)
    name = next(n for n in report["components"] if n.startswith("expert_"))  # 2 steps: not every expert runs
    expert = roof["components"][name]
    assert expert["gflop"] == pytest.approx(flops / 1e9)
    assert expert["gflops"] == pytest.approx(flops / (report["components"][name]["p50_ms"] * 1e-3) / 1e9)
    assert expert["share"] == pytest.approx(expert["gflops"] / roof["sgemm_gflops"])
    assert expert["limit"] == "sgemm" and expert["share_of_sgemm"] == expert["share"] and roof["int8_gops"] is None
    decoder = {"gflop": 0.0, "gflops": None, "limit": "sgemm", "share": None, "share_of_sgemm": None}
    assert roof["components"]["decoder"] == decoder  # pixel unshuffle
    assert profile_cli.main([str(path), "--runs", "1", "--warmup", "0", "--json", "-q", "--no-roofline"]) == 0
    assert json.loads(capsys.readouterr().out)["reports"][0]["roofline"] == {}
    pytest.importorskip("matplotlib")
    code = profile_cli.main([str(path), "--runs", "2", "--warmup", "0", "--plot", str(png), "-q", "--threads", "1"])
    assert code == 0
    out = capsys.readouterr().out
    assert "whole image: p50" in out and "1 threads" in out and f"plot: {png}" in out
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB"))
    assert pixels.shape[0] > 300 and pixels.shape[1] > 500
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 8  # drawn, not blank


def test_cli_compare_table(tiny_bundles, capsys):
    a, b = tiny_bundles("onnx-fp32").bundle.path, tiny_bundles("onnx-int8").bundle.path
    assert profile_cli.main(["--compare", str(a), str(b), "--runs", "2", "--warmup", "0", "-q"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(lines) == 3 and "onnx-fp32" in lines[1] and "1.00x" in lines[1] and "onnx-int8" in lines[2]
    assert lines[0].endswith("| experts GFLOP/s | of SGEMM | of limit |") and lines[2].endswith("% |")
    # FP32 experts are held against the SGEMM rate, INT8 experts against the INT8 rate (measured here)
    fp32_cells, int8_cells = (line.split("|")[-4:-1] for line in lines[1:])
    assert fp32_cells[1] == fp32_cells[2] and int8_cells[1] != int8_cells[2]


def test_int8_experts_are_held_against_the_int8_rate(tiny_bundles):
    from linearsr_edge.profiling.roofline import int8_rate, sgemm_rate

    with SRRuntime.load(tiny_bundles("onnx-int8").bundle.path, backend="onnxruntime") as rt:
        report = add_roofline(profile(rt, _frame(), SampleOptions(steps=2), runs=1, warmup=0), rt, SampleOptions())
    roof = report.roofline
    threads = roof["threads"]
    assert (roof["int8_gops"], roof["int8_by"]) == int8_rate(threads) and roof["sgemm_gflops"] == sgemm_rate(threads)[0]
    for name, r in roof["components"].items():
        if name.startswith("expert_"):
            assert r["limit"] == "int8" and r["share"] == pytest.approx(r["gflops"] / roof["int8_gops"])
            assert r["share_of_sgemm"] == pytest.approx(r["gflops"] / roof["sgemm_gflops"])
        else:
            assert r["limit"] == "sgemm"
    assert "the experts' limit: INT8" in report.table()


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "give a bundle"),
        (["{b}", "--try-steps", "1,x", "--budget-ms", "10"], "--try-steps"),
        (["{b}", "--runs", "0"], "--runs"),
        (["{b}", "--budget-ms", "0", "--try-steps", "1"], "--budget-ms must be positive"),
        (["{b}", "--precision-hint", "f32"], "--precision-hint does not apply"),
        (["{b}", "--resolution", "9000x9000"], "outside the bundle's profile"),
        (["{b}", "--plot", "x.png", "--compare", "{b}"], "--plot draws one bundle"),
    ],
)
def test_cli_refuses_with_a_message(tiny_bundles, capsys, argv, message):
    path = str(tiny_bundles("onnx-fp32").bundle.path)
    code = profile_cli.main([a.format(b=path) for a in argv] + ["-q"])
    assert code == 2
    assert message in capsys.readouterr().err


def test_budget_answer_and_its_command(tiny_bundles, tmp_path, capsys):
    """The budget's answer names a configuration that fits; its printed command runs and gives the
    same image as that configuration through the API."""
    fp32, int8 = tiny_bundles("onnx-fp32").bundle.path, tiny_bundles("onnx-int8").bundle.path
    frame = tmp_path / "frame.png"
    from linearsr_edge.pipeline.imaging import read_image, write_image

    write_image(frame, _frame(16, 24, seed=3))
    argv = [str(int8), "--compare", str(fp32), "--budget-ms", "60000", "--try-steps", "1,2"]
    argv += ["--image", str(frame), "--runs", "1", "--warmup", "0", "-q", "--threads", "1"]
    assert profile_cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "quality: PSNR of each configuration's output against onnx-fp32 at 4 steps" in out
    table = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| bundle |")]
    assert len(table) == 4  # 2 bundles x 2 step counts (the reference run is not a row: 4 is not tried)
    best = next(line for line in out.splitlines() if line.startswith("best quality within"))
    assert "onnx-fp32" in best and "2 step(s)" in best  # fp32 at 2 steps is closest to fp32 at 4
    command = next(line for line in out.splitlines() if line.strip().startswith("command:")).split("command:")[1]
    words = shlex.split(command)
    assert words[0] == "linearsr-upscale" and "--threads" in words and "--warmup" in words
    out_png = tmp_path / "out.png"
    words[words.index("-o") + 1] = str(out_png)
    assert upscale_cli.main([*words[1:], "-q"]) == 0
    with SRRuntime.load(fp32, backend="onnxruntime") as rt:
        expected = rt.upscale(read_image(frame), SampleOptions(steps=2)).image
    assert np.array_equal(read_image(out_png), expected)


def test_budget_stat_p95_is_never_looser_than_p50(tiny_bundles):
    from linearsr_edge.profiling import budget_search

    with SRRuntime.load(tiny_bundles("onnx-fp32").bundle.path, backend="onnxruntime") as rt:
        p50 = budget_search([rt], _frame(16, 24), [1, 2], 1e6, SampleOptions(), runs=3, warmup=0)
        budget = max(r.p50_ms for r in p50.rows) * 1.0001  # every p50 fits
        for stat in ("p50", "p95"):
            answer = budget_search([rt], _frame(16, 24), [1, 2], budget, SampleOptions(), runs=3, warmup=0, stat=stat)
            assert [r.fits for r in answer.rows] == [getattr(r, f"{stat}_ms") <= budget for r in answer.rows]


def test_budget_nothing_fits_exits_1(tiny_bundles, capsys):
    path = str(tiny_bundles("onnx-fp32").bundle.path)
    argv = [path, "--budget-ms", "0.001", "--try-steps", "1", "--runs", "1", "--warmup", "0", "-q"]
    assert profile_cli.main(argv) == profile_cli.EXIT_OVER_BUDGET
    assert "nothing measured fits 0.001 ms" in capsys.readouterr().out


def test_upscale_warmup_flag(tiny_bundles, tmp_path, capsys):
    from linearsr_edge.pipeline.imaging import write_image

    frame = write_image(tmp_path / "f.png", _frame(16, 24)) or tmp_path / "f.png"
    path = str(tiny_bundles("onnx-fp32").bundle.path)
    assert upscale_cli.main([str(frame), "-o", str(tmp_path / "o.png"), "--bundle", path, "--warmup", "2"]) == 0
    assert "2 warm-up runs" in capsys.readouterr().out
    assert upscale_cli.main([str(frame), "-o", str(tmp_path / "o.png"), "--bundle", path, "--warmup", "-1"]) == 2


def test_budget_measures_tile_sizes_and_the_upscale_tile_flag(tiny_bundles, tmp_path, capsys):
    from linearsr_edge.pipeline.imaging import read_image, write_image
    from linearsr_edge.profiling import budget_search

    frame = _frame(32, 48, seed=5)
    path = tiny_bundles("onnx-fp32").bundle.path
    with SRRuntime.load(path, backend="onnxruntime") as rt:
        answer = budget_search([rt], frame, [2], 1e6, SampleOptions(), runs=1, warmup=0, tiles=[None, 32])
        tiled = rt.upscale(frame, SampleOptions(steps=2), tiling=True, tile=32).image
    assert sorted((r.tile or 0) for r in answer.rows) == [0, 32]
    row = next(r for r in answer.rows if r.tile == 32)
    assert math.isfinite(row.quality_db) and row.quality_db > 20.0
    write_image(tmp_path / "f.png", frame)
    argv = [str(tmp_path / "f.png"), "-o", str(tmp_path / "o.png"), "--bundle", str(path), "--steps", "2"]
    assert upscale_cli.main([*argv, "--tile", "32", "-q"]) == 0
    assert np.array_equal(read_image(tmp_path / "o.png"), tiled)
    no_bundle = [str(tmp_path / "f.png"), "-o", str(tmp_path / "o2.png"), "--tile", "32"]
    assert upscale_cli.main(no_bundle) == 2
    assert "--tile applies to --bundle" in capsys.readouterr().err
