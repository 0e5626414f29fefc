"""Building a TensorRT bundle's engines on the device that runs them, and verifying them there.

`build_engines` builds each component's engine through the vendor adapter (strongly typed, the recipe's
optimization profile, workspace and timing cache) into a copy of the bundle (`BundleWriter.amend`: hard
links, so nothing is copied), writes a metadata sidecar beside each engine (what it is, for a file
lifted into DeepStream or Triton), runs the bundle's golden set on the staged engines, records where they
were built and the verification in the manifest, and commits: the bundle changes atomically, or not at
all. ``linearsr-build-engines`` and ``SRRuntime.load(..., build="if-needed")`` are its two callers;
nothing builds engines while opening a session.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from linearsr_edge.backends.tensorrt.options import TRTRuntimeOptions
from linearsr_edge.backends.tensorrt.plan import EnginesRecord, GpuTarget, TensorRTSection
from linearsr_edge.bundle import Bundle, BundleWriter
from linearsr_edge.errors import ConfigError, QualityGateError
from linearsr_edge.machine import machine_summary
from linearsr_edge.manifest import VerificationRecord
from linearsr_edge.pipeline.runtime import SRRuntime
from linearsr_edge.quality.verify import VerifyReport, bundle_thresholds, run_golden


@dataclass
class EngineBuild:
    bundle: Bundle  # the bundle with its engines, as committed
    here: GpuTarget
    report: VerifyReport


def engine_metadata(onnx_path: Path) -> dict[str, str]:
    """The ``linearsr.*`` metadata of the graph an engine is built from (its ONNX ``metadata_props``)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props if p.key.startswith("linearsr.")}


def build_engines(
    bundle: Bundle,
    backend: type,
    options: TRTRuntimeOptions | None = None,
    workspace_mib: int | None = None,
    progress: bool = True,
) -> EngineBuild:
    """Build every engine of a TensorRT bundle with ``backend``'s adapter on ``options.device``, verify them with
    the golden set, and commit the bundle with the engines and the verification; then `QualityGateError` when
    the engines miss the bundle's gates (the record says so, with no command to finish: none would help)."""
    options = options or TRTRuntimeOptions()
    section: TensorRTSection | None = bundle.manifest.family("tensorrt")
    if bundle.format != "tensorrt" or section is None:
        raise ConfigError(f"{bundle.path} is a {bundle.target} bundle, not a TensorRT one (trt-fp16 / trt-int8)")
    trt = backend.adapter()
    trt.set_device(options.device)
    here = trt.gpu(options.device)
    workspace = workspace_mib or section.workspace_mib
    cache = (bundle.path / section.timing_cache).read_bytes() if (bundle.path / section.timing_cache).is_file() else b""
    with BundleWriter.amend(bundle) as writer:
        for entry in tqdm(section.components.values(), desc="build engines", unit="engine", disable=not progress):
            engine, cache = trt.build(
                bundle.path / entry.onnx, entry.profile, workspace, section.builder_optimization_level, cache
            )
            writer.write_bytes(entry.engine, engine)
            sidecar = {
                **engine_metadata(bundle.path / entry.onnx),
                **{f"linearsr.{k}": v for k, v in vars(here).items()},
            }
            writer.write_bytes(f"{entry.engine}.json", (json.dumps(sidecar, indent=2) + "\n").encode())
        writer.write_bytes(section.timing_cache, cache)
        built = EnginesRecord(here.tensorrt, here.gpu, here.compute_capability, workspace)
        manifest = bundle.manifest.with_family("tensorrt", replace(section, engines=built))
        staged = writer.staged(manifest)
        with SRRuntime(backend(staged, options)) as runtime:
            report = run_golden(runtime)
        committed = writer.commit(replace(manifest, verification=engine_verification(bundle, here, report)))
    if not report.passed:  # the engines stay, recorded as failing here (building again would not help)
        raise QualityGateError(
            f"{bundle.path}: the engines built on {here.gpu} miss the bundle's quality gates for "
            f"{', '.join(report.failed_components)}\n{report.table()}"
        )
    return EngineBuild(committed, here, report)


def engine_verification(bundle: Bundle, here: GpuTarget, report: VerifyReport) -> VerificationRecord:
    """The bundle's verification after an engine build: the engines' rows, where they ran, and no trace of the
    export host's checks (its machine, the command that finished it)."""
    reason = None
    if not report.passed:
        reason = f"the engines built on {here.gpu} miss the golden set for {', '.join(report.failed_components)}"
    return VerificationRecord(
        verified=report.passed,
        thresholds=bundle_thresholds(bundle),
        rows=tuple(report.rows),
        backend="tensorrt",
        backend_version=here.tensorrt,
        backend_settings={"gpu": here.gpu, "compute_capability": here.compute_capability},
        machine=machine_summary(),
        reason=reason,
    )
