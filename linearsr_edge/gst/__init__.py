"""The ``linearsr`` GStreamer element: what it needs that is not GStreamer.

The element itself (``plugin/python/linearsr.py``) is a thin adapter: GStreamer's Python plugin loader finds it
in ``$GST_PLUGIN_PATH/python/`` and runs it in the system Python. Everything it computes lives here, in plain
NumPy, and runs in the Linux tests without GStreamer: the caps arithmetic (`scaled_size`), the raw formats it
takes (`RAW_FORMATS`), reading a frame out of a mapped buffer with its stride (`frame_from_buffer`) and writing
the result into one (`frame_into_buffer`), the element's settings parsed and checked (`ElementSettings`), and the
environment a pipeline needs to find the element and this package (`environment`, printed by ``linearsr-gst``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from linearsr_edge.errors import ConfigError, ImageError

PLUGIN_DIR = Path(__file__).parent / "plugin"  # GST_PLUGIN_PATH entry: the loader reads its python/ folder


@dataclass(frozen=True)
class RawFormat:
    """A raw video format the element takes: bytes per pixel and the channel order of its first three bytes."""

    name: str
    bpp: int
    order: str  # "rgb" or "bgr"


RAW_FORMATS = {f.name: f for f in (RawFormat("RGB", 3, "rgb"), RawFormat("BGR", 3, "bgr"),
                                   RawFormat("RGBx", 4, "rgb"), RawFormat("BGRx", 4, "bgr"))}  # fmt: skip
CAPS_FORMATS = "{ " + ", ".join(RAW_FORMATS) + " }"


def raw_format(name: str) -> RawFormat:
    if name not in RAW_FORMATS:
        names = ", ".join(RAW_FORMATS)
        raise ConfigError(f"linearsr takes raw {names} video, got {name!r}; put videoconvert before it")
    return RAW_FORMATS[name]


def scaled_size(width: int, height: int, scale: int, direction: str) -> tuple[int, int]:
    """The other pad's frame size: ``x scale`` from the sink (input) side, ``/ scale`` from the source side (None
    when the source size is not a multiple of the scale: no input gives it)."""
    if direction == "sink":
        return width * scale, height * scale
    if width % scale or height % scale:
        raise ConfigError(f"{width}x{height} is not {scale}x an input size")
    return width // scale, height // scale


def frame_from_buffer(data, fmt: RawFormat, width: int, height: int, stride: int) -> np.ndarray:
    """``uint8 [H, W, 3]`` in the format's channel order, a view of a mapped buffer of ``height`` rows of ``stride``
    bytes (padding and the x byte left out)."""
    need = stride * (height - 1) + width * fmt.bpp
    buf = np.frombuffer(data, np.uint8)
    if buf.size < need:
        raise ImageError(f"a {width}x{height} {fmt.name} frame needs {need} bytes, the buffer holds {buf.size}")
    rows = np.lib.stride_tricks.as_strided(buf, (height, width, fmt.bpp), (stride, fmt.bpp, 1))
    return rows[:, :, :3]


def frame_into_buffer(image: np.ndarray, data, fmt: RawFormat, stride: int) -> None:
    """Write ``uint8 [H, W, 3]`` (in the format's channel order) into a mapped writable buffer with ``stride``;
    the x byte of RGBx/BGRx is set to 255."""
    height, width = image.shape[:2]
    out = np.frombuffer(data, np.uint8)
    view = np.lib.stride_tricks.as_strided(out, (height, width, fmt.bpp), (stride, fmt.bpp, 1))
    view[:, :, :3] = image
    if fmt.bpp == 4:
        view[:, :, 3] = 255


@dataclass(frozen=True)
class ElementSettings:
    """The element's properties, checked: a bad value is refused with a line naming the property."""

    bundle: str = ""
    backend: str = "auto"
    threads: int = 0  # 0: the backend's default
    steps: int = 0  # 0: the model's default
    seed: int = 0
    tile: int = 0  # output pixels; 0: tiles only frames above the bundle's profile
    roi: str = ""  # "x,y,w,h" of the input frame; empty: the whole frame
    options: str = ""  # more backend options, "name=value" separated by ';' (e.g. "device=CPU;precision_hint=f32")
    reuse: str = "none"  # "tiles": change-aware streaming (linearsr_edge.pipeline.reuse)
    reuse_threshold: int = 0  # input levels an encoder tile may move and still be reused

    def __post_init__(self) -> None:
        if self.reuse not in ("none", "tiles"):
            raise ConfigError(f"linearsr: reuse must be none or tiles, got {self.reuse!r}")
        if not 0 <= self.reuse_threshold <= 255:
            raise ConfigError(f"linearsr: reuse-threshold must be in 0..255, got {self.reuse_threshold}")
        if self.reuse == "tiles" and self.roi:
            raise ConfigError("linearsr: reuse=tiles runs whole frames in tiles: it takes no roi")
        for name in ("threads", "steps", "tile"):
            if getattr(self, name) < 0:
                raise ConfigError(f"linearsr: {name} must be 0 or more, got {getattr(self, name)}")
        self.roi_box()
        self.backend_options()

    def roi_box(self) -> tuple[int, int, int, int] | None:
        if not self.roi:
            return None
        parts = self.roi.replace(" ", "").split(",")
        if len(parts) != 4 or not all(p.isdigit() for p in parts) or int(parts[2]) < 1 or int(parts[3]) < 1:
            raise ConfigError(f"linearsr: roi must be 'x,y,w,h' in input pixels, got {self.roi!r}")
        x, y, w, h = (int(p) for p in parts)
        return x, y, w, h

    def backend_options(self) -> dict[str, str]:
        pairs = [p for p in self.options.split(";") if p.strip()]
        out = {}
        for pair in pairs:
            name, sep, value = pair.partition("=")
            if not sep or not name.strip():
                raise ConfigError(f"linearsr: options must be 'name=value;...', got {pair!r}")
            out[name.strip().replace("-", "_")] = value.strip()
        return out


def typed_options(options_type, settings: ElementSettings):
    """The backend's typed options from ``threads`` and the ``options`` string (each value converted to its
    field's type); a name the backend does not take is refused, naming the ones it does."""
    known = {f.name: f for f in fields(options_type)}
    values: dict[str, object] = {}
    if settings.threads:
        values["threads"] = settings.threads
    for name, text in settings.backend_options().items():
        if name not in known:
            raise ConfigError(f"linearsr: backend option {name!r} is unknown here; known: {', '.join(sorted(known))}")
        default = getattr(options_type(), name)
        values[name] = _convert(text, default, name)
    return options_type(**values)


def _convert(text: str, default, name: str):
    if isinstance(default, bool):
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"linearsr: option {name} takes true or false, got {text!r}")
        return text.lower() in ("true", "1", "yes")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"linearsr: option {name} takes an integer, got {text!r}") from None
    if isinstance(default, Path) or name.endswith("_dir"):
        return Path(text)
    return text


def venv_free_path(path: str | None = None) -> str | None:
    """``PATH`` without virtual-environment ``bin`` folders, or None when it holds none. GStreamer's plugin loader
    embeds the system Python, which finds its home through ``python3`` on PATH: a venv's there makes it a venv
    interpreter without the system's site-packages, where PyGObject lives ("pygobject initialization failed")."""
    entries = (os.environ.get("PATH", "") if path is None else path).split(os.pathsep)
    kept = [e for e in entries if not (e and (Path(e).parent / "pyvenv.cfg").is_file())]
    return os.pathsep.join(kept) if len(kept) != len(entries) else None


def environment(python_path: list[str] | None = None, child: bool = True) -> dict[str, str]:
    """What ``gst-launch-1.0 ... linearsr ...`` needs: GStreamer's plugin path (this element), the Python path of
    the system Python the loader embeds (this package and the installed backends' site-packages), and, for a
    child process only (``child``), ``PATH`` without virtual environments (`venv_free_path`)."""
    import linearsr_edge

    here = str(Path(linearsr_edge.__file__).resolve().parents[1])
    paths = python_path if python_path is not None else [here, *(p for p in sys.path if p.endswith("site-packages"))]
    env = {"GST_PLUGIN_PATH": str(PLUGIN_DIR)}
    if os.environ.get("GST_PLUGIN_PATH"):
        env["GST_PLUGIN_PATH"] += os.pathsep + os.environ["GST_PLUGIN_PATH"]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    path = venv_free_path()
    if child and path is not None:
        env["PATH"] = path
    return env
