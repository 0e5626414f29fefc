"""Build a bundle for one target, in named stages:

resolve the source -> calibrate -> export the components -> verify -> commit.

Verification runs the target's *own* backend (a backend registered for the target's format)
against the PyTorch reference; where no such backend is installed, the bundle is written with
``"verified": false`` and the reason, and is verified where it runs. Nothing is ever verified by
comparing PyTorch with itself. One row type (`CheckRow`) reports FP32 parity and FP16/INT8 gates,
and one `QualityThresholds` per precision sets the limits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from linearsr_edge import interrupt
from linearsr_edge.bundle import Bundle, BundleWriter, check_destination
from linearsr_edge.calibration import CalibrationOptions, CalibrationSet, collect, images_from_dir
from linearsr_edge.checks import CheckRow, QualityThresholds
from linearsr_edge.demo import load_demo, sample_images
from linearsr_edge.errors import BackendUnavailableError, ConfigError
from linearsr_edge.fileio import disk_bytes
from linearsr_edge.machine import machine_summary
from linearsr_edge.manifest import (
    GOLDEN_FILE,
    ComponentEntry,
    GoldenRecord,
    Manifest,
    SourceRecord,
    TagsRecord,
    VerificationRecord,
)
from linearsr_edge.model.components import component_module
from linearsr_edge.model.folder import ModelFolder
from linearsr_edge.pipeline.imaging import read_image
from linearsr_edge.pipeline.process import SampleOptions
from linearsr_edge.pipeline.runtime import SRRuntime
from linearsr_edge.pipeline.session import backends_for, pick_backend
from linearsr_edge.quality.golden import record_golden, step_deltas
from linearsr_edge.quality.parity import enforce, max_abs_row, psnr_row, sqnr_row, step_row
from linearsr_edge.reference import load_model_folder
from linearsr_edge.registry import wrong_platform
from linearsr_edge.serial import to_data
from linearsr_edge.specs import ComponentId, ComponentSpec, Profile, component_specs
from linearsr_edge.tags import NULL_TAG, TagVocabulary
from linearsr_edge.targets import Exporter, TargetInfo, get_target

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
    thresholds: QualityThresholds | None = None  # None: the target precision's defaults
    target_options: Any = None  # the target's own options (`TargetInfo.options`); None: its defaults
    progress: bool = True
    # targets without calibration: the photo of the end-to-end check (default: the demo sample)
    parity_image: Path | None = None
    # targets with calibration (FP16: held-out data for the gates; INT8: band samples too)
    calib_dir: Path | None = None  # default: the demo's sample photos
    calib_source: Iterable[np.ndarray] | None = None  # from Python: any iterable of uint8 [H, W, 3] images
    calibration: CalibrationOptions = field(default_factory=CalibrationOptions)


@dataclass
class Source:
    """What the export reads: the model, its record for the manifest, the component specs, the tags,
    and the PyTorch reference that calibration and verification share."""

    folder: ModelFolder
    record: dict[str, Any]
    specs: list[ComponentSpec]
    tags: TagVocabulary | None
    reference: SRRuntime


@dataclass
class ExportResult:
    bundle: Bundle
    verification: VerificationRecord

    @property
    def rows(self) -> list[CheckRow]:
        return list(self.verification.rows)


# -- stage 1: the source --------------------------------------------------------------------------
def resolve_source(opts: ExportOptions) -> Source:
    """Load the model, check the profile against it and this machine, resolve the tag vocabulary."""
    if opts.checkpoint is None:
        folder, record = load_demo(), {"kind": "demo"}
    else:
        folder = load_model_folder(opts.checkpoint)
        record = {"kind": "folder", "path": str(Path(opts.checkpoint).resolve())}
    opts.profile.check_model(folder.cfg, folder.codec.factor)
    specs = component_specs(folder.cfg, opts.profile, folder.codec.factor)
    return Source(folder, record, specs, resolve_tags(folder, opts), folder.reference())


def resolve_tags(folder: ModelFolder, opts: ExportOptions) -> TagVocabulary | None:
    """The tag vocabulary cached in the bundle: ``--tags`` encoded by ``--text-encoder`` or read from
    ``--cond-file``, else the model's own vocabulary."""
    if opts.text_encoder is not None and opts.cond_file is not None:
        raise ConfigError("give --text-encoder or --cond-file, not both")
    if opts.text_encoder is not None:
        from linearsr_edge.model.textenc import encode_tags

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


# -- stage 2: calibration -------------------------------------------------------------------------
def calibration_images(opts: ExportOptions) -> Iterable:
    if opts.calib_source is not None:
        return opts.calib_source
    if opts.calib_dir is not None:
        return images_from_dir(opts.calib_dir)
    samples = sample_images()
    if not samples:
        raise ConfigError("no calibration images: pass --calib-dir (the demo samples are missing)")
    return images_from_dir(samples[0].parent)


def calibrate(source: Source, target: TargetInfo, opts: ExportOptions) -> CalibrationSet | None:
    """Band-stratified data from the FP32 reference: held-out data for the gates and, for INT8, each
    expert's calibration samples. None for targets that need neither."""
    if target.calibration == "none":
        return None
    copts = replace(opts.calibration, progress=opts.progress)
    if target.calibration == "heldout":
        copts = replace(copts, samples_per_expert=0)
    return collect(source.reference.process, calibration_images(opts), copts)


# -- stage 3: the components ----------------------------------------------------------------------
def export_components(
    source: Source, exporter: Exporter, calib: CalibrationSet | None, writer: BundleWriter, opts: ExportOptions
) -> dict[str, ComponentEntry]:
    """Every component into the writer's folder; returns the manifest's component entries (each with the spec
    as exported: the target's size policy)."""
    components = {}
    bar = tqdm(source.specs, desc=f"export {opts.target}", unit="component", disable=not opts.progress)
    for spec in bar:
        interrupt.check()
        bar.set_postfix_str(spec.name)
        data = None
        if calib is not None and spec.kind == "expert" and calib.samples.get(spec.id.expert_index):
            data = calib.samples[spec.id.expert_index]
        files = exporter.export(component_module(source.folder, spec.name), spec, writer.tmp, calibration=data)
        components[spec.name] = ComponentEntry(
            files[0].name, tuple(f.name for f in files), sum(disk_bytes(f) for f in files), exporter.spec_of(spec)
        )
    if source.tags is not None:
        writer.write_tags(source.tags)
    return components


# -- stage 3b: the golden set ---------------------------------------------------------------------
def write_golden(
    source: Source, calib: CalibrationSet | None, writer: BundleWriter, opts: ExportOptions
) -> GoldenRecord:
    """Record the golden set (`linearsr_edge.golden`) at the profile's smallest input size from a held-out
    photo (or the parity photo), write it into the bundle, and return its manifest entry."""
    if calib is not None and calib.heldout_images:
        image = calib.heldout_images[0]
    else:
        path = opts.parity_image or next(iter(sample_images()), None)
        if path is None:
            raise ConfigError("no photo for the golden set: pass --parity-image")
        image = read_image(path)
    encoder = next(s for s in source.specs if s.kind == "encoder")
    s = source.folder.cfg.upscale
    side = max(-(-encoder.dims[a].min // s) for a in ("img_height", "img_width"))
    if min(image.shape[:2]) < side:
        raise ConfigError(f"the golden-set photo is smaller than the profile's smallest input ({side}x{side})")
    h, w = image.shape[:2]
    crop = np.ascontiguousarray(
        image[(h - side) // 2 : (h - side) // 2 + side, (w - side) // 2 : (w - side) // 2 + side]
    )
    golden = record_golden(source.reference.process, crop)
    golden.save(writer.tmp / GOLDEN_FILE)
    return GoldenRecord(
        GOLDEN_FILE,
        (writer.tmp / GOLDEN_FILE).stat().st_size,
        {str(k): len(v) for k, v in golden.experts.items()},
        (side, side),
        golden.steps,
        golden.seed,
    )


# -- stage 4: verification ------------------------------------------------------------------------
def verify(
    source: Source, target: TargetInfo, calib: CalibrationSet | None, staged: Bundle, opts: ExportOptions
) -> VerificationRecord:
    """Run the staged bundle on the target's own backend and check it against the PyTorch reference."""
    thresholds = opts.thresholds or QualityThresholds.default(target.precision)
    try:
        # engines are built on the device (linearsr-build-engines): here the graphs run on another backend
        backend = pick_backend(target.format, exclude=target.verified_by)
    except BackendUnavailableError as exc:
        # a backend that runs on another OS (Core ML: macOS) verifies it there, from the golden set
        elsewhere = [b for b in backends_for(target.format) if wrong_platform(b)]
        finish = f"linearsr-verify {shlex.quote(str(opts.out))}" if elsewhere else None
        return VerificationRecord(
            False, thresholds, reason=f"not verified on this machine: {exc}", finish_on_device=finish
        )
    runtime = SRRuntime(backend.backend_class(staged, backend.verification_options()))
    try:
        if calib is None:
            rows = _parity_rows(source, runtime, thresholds, opts)
        else:
            rows = _gate_rows(source, runtime, calib, thresholds, opts.progress)
        settings = runtime.backend_settings()
    finally:
        runtime.close()
    ran = dict(
        rows=tuple(rows),
        backend=backend.name,
        backend_version=backend.version(),
        backend_settings=settings,
        machine=machine_summary(),  # the CPU and ISA the gates ran on: INT8 results depend on it
    )
    if target.verified_by and backend.name not in target.verified_by:
        reason = (
            f"not verified on this machine: {target.name} runs on {' or '.join(target.verified_by)} engines, built on "
            f"the device; these gates ran the same graphs on {backend.name} {backend.version()}"
        )
        finish = f"linearsr-build-engines {shlex.quote(str(opts.out))}"
        return VerificationRecord(False, thresholds, reason=reason, finish_on_device=finish, **ran)
    return VerificationRecord(True, thresholds, **ran)


def _parity_rows(
    source: Source, runtime: SRRuntime, thresholds: QualityThresholds, opts: ExportOptions
) -> list[CheckRow]:
    """FP32: each component's max abs error at two profile corners (experts: SQNR too), and end to end."""
    reference, rows = source.reference, []
    for spec in tqdm(source.specs, desc="parity", unit="component", disable=not opts.progress):
        refs, gots = [], []
        for which, batch in (("opt", min(2, spec.dims["batch"].max)), ("min", 1)):
            feeds = spec.dummy_inputs(which, batch=batch, seed=7)
            ref, got = reference.run_component(spec.name, feeds), runtime.run_component(spec.name, feeds)
            for name in spec.output_names:
                case = f"{which} b{batch}" + (f" {name}" if len(spec.output_names) > 1 else "")
                rows.append(max_abs_row(spec.name, case, ref[name], got[name], spec.tolerance))
                refs.append(ref[name])
                gots.append(got[name])
        if spec.kind == "expert":
            rows.append(sqnr_row(spec.name, "opt and min corners", refs, gots, thresholds.expert_sqnr_db))
    image_path = opts.parity_image or next(iter(sample_images()), None)
    if image_path is not None:
        image = runtime.crop_to_profile(read_image(image_path))
        sample = SampleOptions(seed=0)
        ref = reference.upscale(image, sample).image
        got = runtime.upscale(image, sample).image
        rows.append(psnr_row(f"end-to-end {image_path.name}", [ref], [got], thresholds.e2e_psnr_db))
    return rows


def _gate_rows(
    source: Source, runtime: SRRuntime, calib: CalibrationSet, thresholds: QualityThresholds, progress: bool
) -> list[CheckRow]:
    """FP16 / INT8: per-expert SQNR and step SNR on held-out band data, end-to-end PSNR on held-out photos."""
    reference, rows = source.reference, []
    steps = calib.options.steps or 2 * source.folder.cfg.default_steps  # as the held-out data was recorded
    delta = step_deltas(reference.process, SampleOptions(steps=steps))
    for k in tqdm(range(source.folder.cfg.num_experts), desc="quality gates", unit="expert", disable=not progress):
        name = f"expert_{k}"
        feeds = [runtime.fit_feeds(f) for f in calib.heldout[k]]  # Core ML: an enumerated size
        refs = [reference.run_component(name, f)["velocity"] for f in feeds]
        tests = [runtime.run_component(name, f)["velocity"] for f in feeds]
        rows.append(sqnr_row(name, f"{len(feeds)} held-out band inputs", refs, tests, thresholds.expert_sqnr_db))
        latents = [f["latent"] for f in feeds]
        dsigmas = [delta(float(f["sigma"][0])) for f in feeds]
        rows.append(
            step_row(name, f"{len(feeds)} held-out steps", latents, refs, tests, dsigmas, thresholds.step_snr_db)
        )
    sample = SampleOptions(seed=0)
    images = [runtime.crop_to_profile(img) for img in calib.heldout_images]
    refs = [reference.upscale(img, sample).image for img in images]
    tests = [runtime.upscale(img, sample).image for img in images]
    rows.append(psnr_row(f"mean over {len(images)} held-out photos", refs, tests, thresholds.e2e_psnr_db))
    return rows


# -- the whole build ------------------------------------------------------------------------------
def build_bundle(opts: ExportOptions) -> ExportResult:
    """Export every component for ``opts.target`` into ``opts.out`` (atomically) and verify it there.

    Raises `QualityGateError` (and writes nothing) when a check misses its limit.
    """
    from linearsr_edge import __version__

    check_destination(opts.out, opts.overwrite)  # before the model loads and calibration runs
    target = get_target(opts.target)
    exporter = target.make_exporter(opts.target_options)
    if target.calibration == "full" and opts.calibration.samples_per_expert < 1:
        raise ConfigError(f"{target.name} calibrates every expert: --calib-samples must be >= 1")
    source = resolve_source(opts)
    exporter.prepare(source.specs)  # may refuse its options for these specs, before any calibration
    calib = calibrate(source, target, opts)
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    export_id = hashlib.sha256(
        json.dumps([__version__, target.name, source.folder.cfg.to_dict(), created, opts.out.name]).encode()
    ).hexdigest()[:16]
    exporter.metadata = {
        "model": source.record.get("path") or source.record["kind"],
        "target": target.name,
        "precision": target.precision.value,
        "export_id": export_id,
        "package_version": __version__,
    }
    exporter.bands = {str(ComponentId.expert(k)): str(b) for k, b in enumerate(source.folder.cfg.bands)}
    with BundleWriter(opts.out, overwrite=opts.overwrite) as writer:
        components = export_components(source, exporter, calib, writer, opts)
        manifest = Manifest(
            target=target.name,
            format=target.format,
            precision=target.precision,
            model=source.folder.cfg.to_dict(),
            codec={**source.folder.codec.to_config(), "factor": source.folder.codec.factor},
            bands=tuple((b.low, b.high) for b in source.folder.cfg.bands),
            profile=opts.profile,
            components=components,
            verification=VerificationRecord(False, opts.thresholds or QualityThresholds.default(target.precision)),
            source=SourceRecord(source.record["kind"], source.record.get("path")),
            package_version=__version__,
            created=created,
            export_id=export_id,
            tags=TagsRecord(tuple(source.tags.names)) if source.tags is not None else None,
            calibration=calib.record() if calib is not None and target.calibration == "full" else None,
            target_options=to_data(exporter.options) if exporter.options is not None else {},
            families=exporter.sections(),
        )
        manifest = replace(manifest, golden=write_golden(source, calib, writer, opts))
        interrupt.check()
        verification = verify(source, target, calib, writer.staged(manifest), opts)
        enforce(verification.rows, opts.target, opts.out)
        interrupt.check()  # never commit a bundle the user asked to stop
        bundle = writer.commit(replace(manifest, verification=verification))
    return ExportResult(bundle, verification)
