"""Export a model to a verified bundle: components -> artifacts -> parity -> manifest -> atomic rename."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from linearsr_edge.bundle import Bundle, BundleWriter, package_version
from linearsr_edge.calibration import CalibrationOptions, CalibrationSet, QualityThresholds, collect, images_from_dir
from linearsr_edge.calibration.gates import GateRow, enforce, expert_gate, pipeline_gate
from linearsr_edge.components import component_module
from linearsr_edge.demo import ModelFolder, load_demo, load_model_folder, sample_images
from linearsr_edge.errors import ConfigError, QualityGateError
from linearsr_edge.exporters import get_target
from linearsr_edge.exporters.onnx_precision import Int8Policy
from linearsr_edge.imaging import read_image
from linearsr_edge.parity import ParityRow, format_report, psnr
from linearsr_edge.pipeline import SampleOptions
from linearsr_edge.precision import Precision
from linearsr_edge.runtimes import SessionOptions, SRRuntime, pick_backend
from linearsr_edge.runtimes.torch import TorchSession
from linearsr_edge.specs import ComponentSpec, Profile, codec_specs, expert_spec
from linearsr_edge.tags import NULL_TAG, TagVocabulary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportOptions:
    target: str
    out: Path
    checkpoint: Path | None = None  # a model folder; None = the bundled demo model
    profile: Profile = field(default_factory=Profile)
    tags: tuple[str, ...] = ()
    cond_file: Path | None = None
    text_encoder: Path | None = None  # a local transformers folder that encodes --tags
    overwrite: bool = False
    parity_image: Path | None = None  # default: the demo's sample photo
    min_e2e_psnr: float = 50.0  # FP32 end-to-end parity against the PyTorch pipeline, dB
    progress: bool = True
    # FP16 / INT8 only
    calib_dir: Path | None = None  # default: the demo's sample photos
    calib_source: Iterable[np.ndarray] | None = None  # from Python: any iterable of uint8 [H, W, 3] images
    calibration: CalibrationOptions = field(default_factory=CalibrationOptions)
    thresholds: QualityThresholds | None = None  # None: the precision's defaults
    int8_policy: Int8Policy = field(default_factory=Int8Policy)


def load_source(checkpoint: Path | None) -> tuple[ModelFolder, dict]:
    if checkpoint is None:
        return load_demo(), {"kind": "demo"}
    return load_model_folder(checkpoint), {"kind": "folder", "path": str(Path(checkpoint).resolve())}


def component_specs(folder: ModelFolder, profile: Profile) -> list[ComponentSpec]:
    factor = folder.codec.factor
    enc, dec = codec_specs(folder.cfg, profile, factor)
    return [*(expert_spec(folder.cfg, k, profile, factor) for k in range(folder.cfg.num_experts)), enc, dec]


def resolve_tags(folder: ModelFolder, opts: ExportOptions) -> TagVocabulary | None:
    """The tag vocabulary cached in the bundle: ``--tags`` encoded by ``--text-encoder`` or read from
    ``--cond-file``, else the model's own vocabulary."""
    if opts.text_encoder is not None and opts.cond_file is not None:
        raise ConfigError("give --text-encoder or --cond-file, not both")
    if opts.text_encoder is not None:
        from linearsr_edge.textenc import encode_tags

        return encode_tags(opts.text_encoder, opts.tags, folder.cfg.cond_dim)
    if opts.cond_file is not None:
        return _tags_from_file(opts.cond_file, opts.tags, folder.cfg.cond_dim)
    if opts.tags and folder.tags is None:
        raise ConfigError("this model has no tag vocabulary: give --text-encoder or --cond-file for the tags")
    if opts.tags and folder.tags is not None:
        folder.tags.indices(opts.tags)  # unknown tags fail here, naming the tag
    return folder.tags


def _tags_from_file(path: Path, tags: tuple[str, ...], dim: int) -> TagVocabulary:
    """An ``.npz`` with one ``[D]`` embedding per tag name, plus ``<null>`` (or an all-zero null)."""
    try:
        data = dict(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read cond file {path}: {exc}") from None
    names = list(tags) or [n for n in data if n != NULL_TAG]
    missing = [n for n in names if n not in data]
    if missing:
        raise ConfigError(f"cond file {path} has no embedding for tags {missing} (has {sorted(data)})")
    rows = [np.asarray(data[n], np.float32).reshape(-1) for n in names]
    null = np.asarray(data.get(NULL_TAG, np.zeros(dim)), np.float32).reshape(-1)
    bad = [n for n, r in zip([*names, NULL_TAG], [*rows, null], strict=True) if r.shape != (dim,)]
    if bad:
        raise ConfigError(f"cond file {path}: embeddings for {bad} are not [{dim}] (the model's cond_dim)")
    return TagVocabulary((*names, NULL_TAG), np.stack([*rows, null]))


def component_parity(module, spec: ComponentSpec, session) -> list[ParityRow]:
    """Compare a backend session with PyTorch on the spec's dummy inputs at two profile corners."""
    ref_sess = TorchSession(module, spec)
    rows = []
    for which, batch in (("opt", 2), ("min", 1)):
        feeds = spec.dummy_inputs(which, batch=batch, seed=7)
        ref = ref_sess.run(feeds)
        got = session.run(feeds)
        for name in spec.output_names:
            err = float(np.abs(ref[name] - got[name]).max())
            label = f"{which} b{batch}" + (f" {name}" if len(spec.output_names) > 1 else "")
            rows.append(
                ParityRow(
                    spec.name,
                    label,
                    err,
                    psnr(ref[name], got[name]),
                    f"max abs <= {spec.tolerance:g}",
                    err <= spec.tolerance,
                )
            )
    return rows


def end_to_end_parity(folder: ModelFolder, runtime: SRRuntime, image_path: Path, limit: float) -> ParityRow:
    image = runtime.crop_to_profile(read_image(image_path))
    opts = SampleOptions(seed=0)
    ref = folder.pipeline().upscale(image, opts).image
    got = runtime.upscale(image, opts).image
    value = psnr(ref, got, peak=255.0)
    err = float(np.abs(ref.astype(np.int16) - got.astype(np.int16)).max())
    return ParityRow("pipeline", f"end-to-end {image_path.name}", err, value, f"PSNR >= {limit:g} dB", value >= limit)


def calibration_images(opts: ExportOptions) -> Iterable:
    if opts.calib_source is not None:
        return opts.calib_source
    if opts.calib_dir is not None:
        return images_from_dir(opts.calib_dir)
    samples = sample_images()
    if not samples:
        raise ConfigError("no calibration images: pass --calib-dir (the demo samples are missing)")
    return images_from_dir(samples[0].parent)


def quality_gates(
    folder: ModelFolder, runtime: SRRuntime, calib: CalibrationSet, thresholds: QualityThresholds, progress: bool
) -> list[GateRow]:
    """Per-expert SQNR on held-out band data and end-to-end PSNR on held-out photos, against FP32 PyTorch."""
    rows = []
    for k in tqdm(range(folder.cfg.num_experts), desc="quality gates", unit="expert", disable=not progress):
        name = f"expert_{k}"
        ref = TorchSession(component_module(folder, name), runtime.bundle.spec(name))
        rows.append(
            expert_gate(
                name,
                lambda f, r=ref: r.run(f)["velocity"],
                lambda f, n=name: runtime.sessions[n].run(f)["velocity"],
                calib.heldout[k],
                thresholds.expert_sqnr_db,
            )
        )
    pipe = folder.pipeline()
    opts = SampleOptions(seed=0)
    images = [runtime.crop_to_profile(img) for img in calib.heldout_images]
    refs = [pipe.upscale(img, opts).image for img in images]
    tests = [runtime.upscale(img, opts).image for img in images]
    rows.append(pipeline_gate(refs, tests, thresholds.e2e_psnr_db))
    return rows


def half_precision_probe(folder: ModelFolder, spec: ComponentSpec) -> dict:
    """Run one expert in PyTorch FP16 (same precision policy) at the largest profile size; no inf/NaN allowed.

    Records the largest intermediate activation and the error against FP32.
    """
    import copy

    import torch

    module = component_module(folder, spec.name)
    half = copy.deepcopy(module).half()
    feeds = spec.dummy_inputs("max", batch=1, seed=3)
    largest = {"value": 0.0, "module": ""}

    def hook_for(name: str):
        def hook(_mod, _inp, out):
            if isinstance(out, torch.Tensor) and out.numel():
                v = float(out.detach().abs().float().max())
                if not v < largest["value"]:  # NaN counts as the largest
                    largest.update(value=v, module=name)

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in half.named_modules() if n]
    with torch.inference_mode():
        out16 = half(*(torch.from_numpy(feeds[n]).half() for n in spec.input_names)).float()
        out32 = module(*(torch.from_numpy(feeds[n]) for n in spec.input_names))
    for h in handles:
        h.remove()
    finite = bool(torch.isfinite(out16).all())
    tokens = feeds["latent"].shape[2] * feeds["latent"].shape[3] // folder.cfg.patch_size**2
    probe = {
        "component": spec.name,
        "tokens": int(tokens),
        "finite": finite,
        "largest_intermediate": largest["value"],
        "largest_in": largest["module"],
        "rel_err_vs_fp32": float((out16 - out32).abs().max() / out32.abs().max().clamp_min(1e-12)),
    }
    if not finite or not largest["value"] < 65504:
        raise QualityGateError(
            f"FP16 probe: {spec.name} overflows at {tokens} tokens (largest intermediate "
            f"{largest['value']:.3g} in {largest['module']}); the precision policy does not hold"
        )
    return probe


def export_bundle(opts: ExportOptions) -> tuple[Bundle, list]:
    """Export every component for ``opts.target`` into ``opts.out`` (atomically) and verify it.

    FP32: per-component max abs error and end-to-end PSNR against PyTorch. FP16 / INT8: band
    calibration (INT8), a PyTorch half-precision probe (FP16), and quality gates. Returns the
    bundle and its report rows (`ParityRow` or `GateRow`).
    """
    target = get_target(opts.target)
    folder, source = load_source(opts.checkpoint)
    specs = component_specs(folder, opts.profile)
    tags = resolve_tags(folder, opts)
    exporter = target.factory.from_options(opts)
    backend = pick_backend(target.format)
    quantized = target.precision != Precision.FP32
    calib = None
    if quantized:
        calib = collect(
            folder.pipeline().process,
            calibration_images(opts),
            CalibrationOptions(
                **{
                    **opts.calibration.__dict__,
                    "progress": opts.progress,
                    # FP16 needs only the held-out data for its gates
                    **({} if exporter.needs_calibration else {"samples_per_expert": 0}),
                }
            ),
        )
    with BundleWriter(opts.out, overwrite=opts.overwrite) as writer:
        components = {}
        bar = tqdm(specs, desc=f"export {opts.target}", unit="component", disable=not opts.progress)
        for spec in bar:
            bar.set_postfix_str(spec.name)
            module = component_module(folder, spec.name)
            data = calib.samples[int(spec.name[7:])] if calib is not None and spec.kind == "expert" else None
            files = exporter.export(module, spec, writer.tmp, calibration=data if exporter.needs_calibration else None)
            components[spec.name] = {"file": files[0].name, "files": [f.name for f in files], "spec": spec.to_dict()}
        if tags is not None:
            writer.write_tags(tags)
        writer.manifest.update(
            {
                "package_version": package_version(),
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "target": target.name,
                "format": target.format,
                "precision": target.precision.value,
                "model": folder.cfg.to_dict(),
                "codec": {**folder.codec.to_config(), "factor": folder.codec.factor},
                "bands": [[b.low, b.high] for b in folder.cfg.bands],
                "profile": opts.profile.to_dict(),
                "source": source,
                "components": components,
                "tags": {"names": list(tags.names), "file": "cond/tags.npy"} if tags is not None else None,
                "calibration": calib.summary() if calib is not None and exporter.needs_calibration else None,
            }
        )
        writer.manifest.update(exporter.manifest_entries())
        staged = Bundle(writer.tmp, {**writer.manifest, "files": {}})
        runtime = SRRuntime(
            staged, {s.name: backend.factory(staged, s.name, SessionOptions()) for s in specs}, backend.name
        )
        if quantized:
            if target.precision == Precision.FP16:
                probes = [half_precision_probe(folder, s) for s in specs if s.kind == "expert"]
                writer.manifest["precision_probe"] = max(probes, key=lambda p: p["largest_intermediate"])
                writer.manifest["precision_probe"]["rel_err_vs_fp32_per_expert"] = [
                    p["rel_err_vs_fp32"] for p in probes
                ]
            thresholds = opts.thresholds or QualityThresholds.default(target.precision)
            rows = quality_gates(folder, runtime, calib, thresholds, opts.progress)
            writer.manifest["quality"] = {
                "backend": backend.name,
                "thresholds": thresholds.__dict__,
                "rows": [r.to_dict() for r in rows],
            }
            enforce(rows, opts.target)
        else:
            rows = fp32_parity(folder, specs, runtime, opts)
            writer.manifest["parity"] = {"backend": backend.name, "rows": [r.to_dict() for r in rows]}
        bundle = writer.commit()
    return bundle, rows


def fp32_parity(
    folder: ModelFolder, specs: list[ComponentSpec], runtime: SRRuntime, opts: ExportOptions
) -> list[ParityRow]:
    rows: list[ParityRow] = []
    for spec in specs:
        rows += component_parity(component_module(folder, spec.name), spec, runtime.sessions[spec.name])
    image_path = opts.parity_image or next(iter(sample_images()), None)
    if image_path is not None:
        rows.append(end_to_end_parity(folder, runtime, image_path, opts.min_e2e_psnr))
    failed = [r for r in rows if not r.passed]
    if failed:
        raise QualityGateError(
            f"{opts.target}: parity failed for {', '.join(sorted({r.component for r in failed}))}; nothing was "
            f"written to {opts.out}\n" + format_report(rows)
        )
    return rows
