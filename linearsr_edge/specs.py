"""One frozen I/O spec per exportable component, shared by every exporter and runtime.

Names, dtypes, symbolic axes, min/opt/max sizes of each axis (TensorRT optimisation profiles
and Core ML flexible shapes are built from the same numbers), a dummy-input factory and a
parity tolerance. `ComponentSpec.check` is the validation every `Session.run` performs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from linearsr_edge.config import ModelConfig
from linearsr_edge.errors import ConfigError, InputSpecError
from linearsr_edge.serial import from_data, to_data

Which = Literal["min", "opt", "max"]
Dim = int | str  # a fixed size or the name of a symbolic axis


@dataclass(frozen=True)
class DimRange:
    min: int
    opt: int
    max: int
    multiple: int = 1  # every size must be a multiple of this

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ConfigError(f"need 1 <= min <= opt <= max, got {self.min}, {self.opt}, {self.max}")
        if any(v % self.multiple for v in (self.min, self.opt, self.max)):
            raise ConfigError(f"sizes {self.min}/{self.opt}/{self.max} must be multiples of {self.multiple}")

    def contains(self, value: int) -> bool:
        return self.min <= value <= self.max and value % self.multiple == 0


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[Dim, ...]
    dtype: str = "float32"


class ComponentId(str):
    """A component's name, typed: ``ComponentId.expert(2)`` is ``"expert_2"``, `ENCODER`, `DECODER`; it is
    the string in manifests and file names, and says what it names (`kind`, `expert_index`)."""

    __slots__ = ()

    def __new__(cls, name: str) -> ComponentId:
        if name not in ("encoder", "decoder") and not (name.startswith("expert_") and name[7:].isdigit()):
            raise ConfigError(f"unknown component {name!r}: expert_<k>, encoder or decoder")
        return super().__new__(cls, name)

    @classmethod
    def expert(cls, index: int) -> ComponentId:
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ConfigError(f"an expert index is a non-negative integer, got {index!r}")
        return cls(f"expert_{index}")

    @property
    def kind(self) -> str:
        """``"expert"``, ``"encoder"`` or ``"decoder"``."""
        return "expert" if self.startswith("expert_") else str(self)

    @property
    def expert_index(self) -> int:
        if self.kind != "expert":
            raise ConfigError(f"{self} is not an expert")
        return int(self[len("expert_") :])


ENCODER = ComponentId("encoder")
DECODER = ComponentId("decoder")

SizeMode = Literal["range", "listed", "pinned"]


@dataclass(frozen=True)
class SizePolicy:
    """The input sizes a bundle's components take, in *output* pixels (H, W) of the image being made:

    * ``range``: any size inside the profile's dims (ONNX Runtime, OpenVINO on CPU, TensorRT);
    * ``listed``: only the ``sizes`` listed (Core ML's enumerated shapes, what the Neural Engine runs);
    * ``pinned``: one size, fixed at load (OpenVINO on an NPU, which compiles static shapes only);

    and ``max_batch``: the most rows one call takes (None: the spec's batch axis; 1: a batch runs row by
    row). `linearsr_edge.pipeline.sizes` pads, crops, tiles and splits rows from it for every backend.
    """

    mode: SizeMode = "range"
    sizes: tuple[tuple[int, int], ...] = ()  # listed / pinned: output sizes (H, W), smallest first
    max_batch: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("range", "listed", "pinned"):
            raise ConfigError(f"a size policy is range, listed or pinned, got {self.mode!r}")
        sizes = tuple(sorted({(int(h), int(w)) for h, w in self.sizes}, key=lambda v: (v[0] * v[1], v)))
        if any(min(v) < 1 for v in sizes):
            raise ConfigError(f"sizes must be positive (H, W) pairs, got {self.sizes}")
        wanted = {"range": (0, 0), "listed": (1, None), "pinned": (1, 1)}[self.mode]
        if len(sizes) < wanted[0] or (wanted[1] is not None and len(sizes) > wanted[1]):
            count = {"range": "no sizes", "listed": "at least one size", "pinned": "exactly one size"}[self.mode]
            raise ConfigError(f"a {self.mode} size policy takes {count}, got {len(sizes)}")
        if self.max_batch is not None and (isinstance(self.max_batch, bool) or self.max_batch < 1):
            raise ConfigError(f"max_batch must be a positive integer or None, got {self.max_batch!r}")
        object.__setattr__(self, "sizes", sizes)

    @classmethod
    def listed(cls, sizes, max_batch: int | None = None) -> SizePolicy:
        return cls("listed", tuple(sizes), max_batch)

    @classmethod
    def pinned(cls, size: tuple[int, int], max_batch: int | None = None) -> SizePolicy:
        return cls("pinned", (tuple(size),), max_batch)

    @property
    def restricted(self) -> bool:
        """Only some sizes run (listed or pinned)."""
        return self.mode != "range"

    def takes(self, height: int, width: int) -> bool:
        """Whether an output of this size runs as it is (range: always; the profile bounds it)."""
        return not self.restricted or (height, width) in self.sizes

    def holding(self, height: int, width: int) -> tuple[int, int] | None:
        """The smallest size that holds an output of ``height`` x ``width`` (the frame is padded to it)."""
        return next((v for v in self.sizes if v[0] >= height and v[1] >= width), None)

    def describe(self) -> str:
        if not self.restricted:
            return "any size in the profile"
        return ", ".join(f"{w}x{h}" for h, w in self.sizes)


@dataclass(frozen=True)
class ComponentSpec:
    """I/O contract of one component (``expert_K``, ``encoder`` or ``decoder``)."""

    name: str
    kind: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    dims: dict[str, DimRange]
    tolerance: float  # max abs error allowed against PyTorch in FP32
    sizes: SizePolicy = SizePolicy()  # the output sizes it takes (Core ML: listed; default: any in the profile)

    @property
    def id(self) -> ComponentId:
        return ComponentId(self.name)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """``{tensor: {axis: symbol}}`` for every symbolic axis, inputs and outputs."""
        return {
            t.name: {i: d for i, d in enumerate(t.shape) if isinstance(d, str)} for t in (*self.inputs, *self.outputs)
        }

    def shape(self, tensor: TensorSpec, which: Which = "opt", **fixed: int) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else fixed.get(d, getattr(self.dims[d], which)) for d in tensor.shape)

    def shapes(self, which: Which = "opt", **fixed: int) -> dict[str, tuple[int, ...]]:
        """Concrete input shapes at the min/opt/max corner (``fixed`` overrides single axes)."""
        return {t.name: self.shape(t, which, **fixed) for t in self.inputs}

    def dummy_inputs(self, which: Which = "opt", seed: int = 0, **fixed: int) -> dict[str, np.ndarray]:
        """Random inputs in each tensor's natural range (sigma in (0, 1], images in [-1, 1])."""
        rng = np.random.default_rng(seed)
        out = {}
        for t in self.inputs:
            shape = self.shape(t, which, **fixed)
            if t.name == "sigma":
                arr = rng.uniform(0.05, 1.0, shape)
            elif t.name == "image":
                arr = rng.uniform(-1.0, 1.0, shape)
            else:
                arr = rng.standard_normal(shape)
            out[t.name] = arr.astype(t.dtype)
        return out

    def check(self, feeds: dict[str, Any]) -> dict[str, int]:
        """Validate names, dtypes, ranks and axis sizes; returns the bound symbol sizes."""
        if not isinstance(feeds, dict):
            raise InputSpecError(f"{self.name}: inputs must be a dict of name -> array, got {type(feeds).__name__}")
        missing = [n for n in self.input_names if n not in feeds]
        extra = [n for n in feeds if n not in self.input_names]
        if missing or extra:
            raise InputSpecError(
                f"{self.name}: expected inputs {self.input_names}; "
                f"missing {missing or 'none'}, unexpected {extra or 'none'}"
            )
        bound: dict[str, int] = {}
        for t in self.inputs:
            arr = feeds[t.name]
            if not isinstance(arr, np.ndarray):
                raise InputSpecError(f"{self.name}.{t.name}: expected a NumPy array, got {type(arr).__name__}")
            if arr.dtype != np.dtype(t.dtype):
                raise InputSpecError(f"{self.name}.{t.name}: expected dtype {t.dtype}, got {arr.dtype}")
            if arr.ndim != len(t.shape):
                raise InputSpecError(
                    f"{self.name}.{t.name}: expected rank {len(t.shape)} {t.shape}, got shape {arr.shape}"
                )
            for axis, (dim, size) in enumerate(zip(t.shape, arr.shape, strict=True)):
                if isinstance(dim, int):
                    if size != dim:
                        raise InputSpecError(f"{self.name}.{t.name}: axis {axis} must be {dim}, got {size}")
                    continue
                if dim in bound and bound[dim] != size:
                    raise InputSpecError(
                        f"{self.name}.{t.name}: axis {axis} ({dim}) is {size} but another input has {dim}={bound[dim]}"
                    )
                rng = self.dims[dim]
                if not rng.contains(size):
                    raise InputSpecError(
                        f"{self.name}.{t.name}: {dim}={size} is outside the exported profile "
                        f"[{rng.min}, {rng.max}]" + (f" (multiple of {rng.multiple})" if rng.multiple > 1 else "")
                    )
                bound[dim] = size
        return bound

    def profile_shapes(self) -> dict[str, dict[str, list[int]]]:
        """``{input: {"min": shape, "opt": shape, "max": shape}}`` from the dims (batch at its min/opt/max with
        every other axis): TensorRT's optimization profiles and ONNX Runtime's TensorRT-EP shapes."""
        return {t.name: {w: list(self.shape(t, w)) for w in ("min", "opt", "max")} for t in self.inputs}

    def to_dict(self) -> dict[str, Any]:
        return to_data(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComponentSpec:
        return from_data(cls, data, "spec")


class ProfileError(ConfigError):
    """An impossible export profile; ``field`` names the `Profile` field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _wxh(hw: tuple[int, int]) -> str:
    return f"{hw[1]}x{hw[0]}"


@dataclass(frozen=True)
class Profile:
    """The resolutions and batch sizes an export supports, in *output image* pixels ((H, W) pairs)."""

    min_hw: tuple[int, int] = (64, 64)
    opt_hw: tuple[int, int] = (256, 256)
    max_hw: tuple[int, int] = (1024, 1024)
    batch: tuple[int, int, int] = (1, 1, 4)
    cond_len: tuple[int, int, int] = (1, 2, 16)

    def __post_init__(self) -> None:
        for name in ("batch", "cond_len"):
            lo, opt, hi = getattr(self, name)
            if hi < 1:
                raise ProfileError(name, f"largest {name} must be >= 1, got {hi}")
            if not 1 <= lo <= opt <= hi:
                raise ProfileError(name, f"{name} needs 1 <= min <= opt <= max, got {lo}, {opt}, {hi}")
        for name in ("min_hw", "opt_hw", "max_hw"):
            if min(getattr(self, name)) < 1:
                raise ProfileError(name, f"{name} sides must be positive, got {_wxh(getattr(self, name))}")
        if any(a > b for a, b in zip(self.min_hw, self.max_hw, strict=True)):
            raise ProfileError(
                "min_hw", f"minimum resolution {_wxh(self.min_hw)} is above the maximum {_wxh(self.max_hw)}"
            )
        if any(not lo <= o <= hi for lo, o, hi in zip(self.min_hw, self.opt_hw, self.max_hw, strict=True)):
            raise ProfileError(
                "opt_hw",
                f"optimal resolution {_wxh(self.opt_hw)} is outside [{_wxh(self.min_hw)}, {_wxh(self.max_hw)}]",
            )

    def latent_dims(self, factor: int, multiple: int) -> dict[str, DimRange]:
        """Latent H/W ranges for a codec of spatial ``factor``; sizes rounded down to ``multiple``."""

        def dim(axis: int) -> DimRange:
            lo, opt, hi = (
                max(multiple, v[axis] // factor // multiple * multiple) for v in (self.min_hw, self.opt_hw, self.max_hw)
            )
            return DimRange(lo, opt, hi, multiple)

        return {"height": dim(0), "width": dim(1)}

    def check_model(self, cfg: ModelConfig, codec_factor: int, memory_bytes: int | None = None) -> None:
        """Refuse a profile the model or this machine cannot take (before any work), giving the limit."""
        unit = codec_factor * cfg.patch_size
        if min(self.min_hw) < unit:
            raise ProfileError(
                "min_hw", f"minimum resolution {_wxh(self.min_hw)} is below one latent patch ({unit}x{unit} px)"
            )
        tokens = (self.max_hw[0] // unit) * (self.max_hw[1] // unit)
        need = activation_bytes(cfg, tokens)
        budget = (memory_bytes if memory_bytes is not None else machine_memory_bytes()) // 2
        if budget and need > budget:
            side = int((budget / activation_bytes(cfg, 1)) ** 0.5) * unit
            raise ProfileError(
                "max_hw",
                f"maximum resolution {_wxh(self.max_hw)} needs about {need / 2**30:.1f} GiB of activations for one "
                f"expert at batch 1 ({tokens:,} tokens); this machine allows {budget / 2**30:.1f} GiB (half its "
                f"memory): keep the maximum at or below about {side}x{side}",
            )

    def to_dict(self) -> dict[str, Any]:
        return to_data(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        return from_data(cls, data, "profile")


def activation_bytes(cfg: ModelConfig, tokens: int) -> int:
    """A rough peak of live FP32 activations in one expert forward pass at batch 1.

    The residual stream, Q/K/V, the Mix-FFN's widened hidden state (twice, around the depthwise
    conv) and the latent inputs; measured peaks of the demo expert in ONNX Runtime stay below it.
    """
    per_token = cfg.hidden_size * (8 + 3 * cfg.mlp_ratio) + 4 * cfg.latent_channels
    return int(4 * tokens * per_token)


def machine_memory_bytes() -> int:
    """Physical memory (0 when unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def parse_resolution(text: str) -> tuple[int, int]:
    """``"WxH"`` -> ``(H, W)``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"resolution must look like 1024x768 (W x H), got {text!r}") from None
    if w < 8 or h < 8:
        raise ConfigError(f"resolution {text!r} is too small (each side >= 8)")
    return h, w


def expert_spec(cfg: ModelConfig, index: int, profile: Profile, codec_factor: int) -> ComponentSpec:
    c = cfg.latent_channels
    dims = {"batch": DimRange(*profile.batch), "cond_len": DimRange(*profile.cond_len)}
    dims.update(profile.latent_dims(codec_factor, cfg.patch_size))
    lat = ("batch", c, "height", "width")
    return ComponentSpec(
        name=f"expert_{index}",
        kind="expert",
        inputs=(
            TensorSpec("latent", lat),
            TensorSpec("lr_latent", lat),
            TensorSpec("sigma", ("batch",)),
            TensorSpec("cond", ("batch", "cond_len", cfg.cond_dim)),
        ),
        outputs=(TensorSpec("velocity", lat),),
        dims=dims,
        tolerance=1e-4,
    )


def component_specs(cfg: ModelConfig, profile: Profile, codec_factor: int) -> list[ComponentSpec]:
    """Every exportable component's spec: ``expert_0 .. expert_{K-1}``, ``encoder``, ``decoder``."""
    enc, dec = codec_specs(cfg, profile, codec_factor)
    return [*(expert_spec(cfg, k, profile, codec_factor) for k in range(cfg.num_experts)), enc, dec]


def codec_specs(cfg: ModelConfig, profile: Profile, codec_factor: int) -> tuple[ComponentSpec, ComponentSpec]:
    """(encoder, decoder) specs. Image sides are multiples of ``codec_factor * patch``."""
    lat_dims = profile.latent_dims(codec_factor, cfg.patch_size)
    img_dims = {
        "img_height": DimRange(
            *(getattr(lat_dims["height"], w) * codec_factor for w in ("min", "opt", "max")),
            lat_dims["height"].multiple * codec_factor,
        ),
        "img_width": DimRange(
            *(getattr(lat_dims["width"], w) * codec_factor for w in ("min", "opt", "max")),
            lat_dims["width"].multiple * codec_factor,
        ),
    }
    batch = {"batch": DimRange(*profile.batch)}
    image = TensorSpec("image", ("batch", 3, "img_height", "img_width"))
    latent = TensorSpec("latent", ("batch", cfg.latent_channels, "height", "width"))
    enc = ComponentSpec("encoder", "encoder", (image,), (latent,), {**batch, **img_dims, **lat_dims}, 1e-4)
    dec = ComponentSpec("decoder", "decoder", (latent,), (image,), {**batch, **img_dims, **lat_dims}, 1e-4)
    return enc, dec
