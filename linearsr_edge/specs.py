"""One frozen I/O spec per exportable component, shared by every exporter and runtime.

Names, dtypes, symbolic axes, min/opt/max sizes of each axis (TensorRT optimisation profiles
and Core ML flexible shapes are built from the same numbers), a dummy-input factory and a
parity tolerance. `ComponentSpec.check` is the validation every `Session.run` performs.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from linearsr_edge.config import ModelConfig
from linearsr_edge.errors import ConfigError, InputSpecError

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


@dataclass(frozen=True)
class ComponentSpec:
    """I/O contract of one component (``expert_K``, ``encoder`` or ``decoder``)."""

    name: str
    kind: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    dims: dict[str, DimRange]
    tolerance: float  # max abs error allowed against PyTorch in FP32

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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in self.inputs]
        data["outputs"] = [{"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in self.outputs]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComponentSpec:
        return cls(
            name=data["name"],
            kind=data["kind"],
            inputs=tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"]) for t in data["inputs"]),
            outputs=tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"]) for t in data["outputs"]),
            dims={k: DimRange(**v) for k, v in data["dims"].items()},
            tolerance=float(data["tolerance"]),
        )


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
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        return cls(**{k: tuple(v) for k, v in data.items()})


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
