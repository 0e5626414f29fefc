"""Host-side image handling shared by the reference pipeline and every runtime (NumPy + Pillow only).

Images are ``uint8 [H, W, 3]`` at the edges of the API and ``float32 [3, H, W]`` in [-1, 1]
inside. Reading converts grayscale, palette, alpha and 16-bit images sensibly.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from linearsr_edge.errors import ConfigError, ImageError
from linearsr_edge.fileio import atomic_write_bytes

# Refuse outputs above this many pixels by default (a 4x upscale of 4K is 132 MP); users may raise it.
DEFAULT_MAX_OUTPUT_PIXELS = 64_000_000
MIN_SIDE = 2


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as ``uint8 [H, W, 3]`` RGB.

    Grayscale is replicated, alpha is composited over white, 16-bit is scaled to 8 bits.
    ``max_pixels`` is checked from the header, before any pixel is decoded.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"input image not found: {path}")
    if path.is_dir():
        raise ImageError(f"input is a folder, not an image: {path}")
    try:
        with Image.open(path) as img:
            if max_pixels is not None and img.width * img.height > max_pixels:
                raise ImageError(
                    f"{path} is {img.width}x{img.height} = {megapixels(img.width * img.height)}, above the input "
                    f"limit of {megapixels(max_pixels)} (raise --max-pixels to allow it)"
                )
            img.load()
            return _to_rgb8(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path} is not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise ImageError(f"{path} is corrupt or truncated: {exc}") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path} is too large to read safely: {exc}") from None


def megapixels(pixels: int) -> str:
    """``"0.262 MP"``: three significant digits, so a value and a limit never print alike when they differ."""
    return f"{pixels / 1e6:.3g} MP"


def _to_rgb8(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(np.round(arr / peak * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if arr.max() <= 1.0 else 1.0
        gray = np.clip(np.round(arr * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate an in-memory ``uint8 [H, W, 3]`` image; returns it contiguous."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"{name} must be a NumPy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ImageError(f"{name} must be uint8 [H, W, 3], got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"{name} must be [H, W, 3] RGB, got shape {image.shape}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ImageError(f"{name} is {image.shape[1]}x{image.shape[0]}; each side must be >= {MIN_SIDE} pixels")
    return np.ascontiguousarray(image)


def frame_rgb(frame: np.ndarray, color: str = "rgb", name: str = "frame") -> np.ndarray:
    """A camera or decoder frame as contiguous ``uint8 [H, W, 3]`` RGB, or a typed `ImageError`.

    Documented handling: ``color="bgr"`` (OpenCV) swaps the channels; gray ``[H, W]`` or
    ``[H, W, 1]`` is replicated to three channels; a fourth (alpha) channel, BGRA or RGBA, is dropped;
    any memory layout is accepted. Refused: anything but ``uint8`` (float frames included: convert with
    ``np.clip(x * 255, 0, 255).astype(np.uint8)``, which also settles NaN and inf), other channel
    counts, and empty frames.
    """
    if color not in ("rgb", "bgr"):
        raise ConfigError(f"color must be 'rgb' or 'bgr', got {color!r}")
    if not isinstance(frame, np.ndarray):
        raise ImageError(f"{name} must be a NumPy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        hint = " (float frames: np.clip(x * 255, 0, 255).astype(np.uint8))" if frame.dtype.kind == "f" else ""
        raise ImageError(f"{name} must be uint8, got dtype {frame.dtype}{hint}")
    if frame.size == 0:
        raise ImageError(f"{name} is empty (shape {frame.shape})")
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4):
        raise ImageError(f"{name} must be [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got shape {frame.shape}")
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    frame = frame[:, :, :3]
    if color == "bgr":
        frame = frame[:, :, ::-1]
    return check_image(np.ascontiguousarray(frame), name)


def result_order(color: str = "rgb", out_color: str | None = None) -> str:
    """The channel order a result comes back in: ``out_color`` if given, else the order the frame came in
    (``color``): an OpenCV caller gets BGR back. A bad order is refused (before any work)."""
    order = color if out_color is None else out_color
    if order not in ("rgb", "bgr"):
        raise ConfigError(f"out_color must be 'rgb', 'bgr' or None (the input's order), got {order!r}")
    return order


def output_order(image: np.ndarray, color: str = "rgb", out_color: str | None = None) -> np.ndarray:
    """An RGB result in the caller's channel order (`result_order`)."""
    return np.ascontiguousarray(image[:, :, ::-1]) if result_order(color, out_color) == "bgr" else image


def check_output_size(height: int, width: int, factor: int, max_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS) -> None:
    out = height * factor * width * factor
    if out > max_pixels:
        raise ImageError(
            f"output would be {width * factor}x{height * factor} = {megapixels(out)}, above the limit of "
            f"{megapixels(max_pixels)}; crop the input or raise the limit (--max-pixels)"
        )


PNG_LEVEL = 3


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write ``uint8 [H, W, 3]`` atomically; the format follows the suffix (PNG, JPEG, ...)."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"cannot tell the image format from the output name {path.name!r}; use .png or .jpg")
    if not path.parent.is_dir():
        raise ImageError(f"output folder does not exist: {path.parent}")
    buf = io.BytesIO()
    # PNG at zlib level 3: on a 512x512 result 0.023 s and 395 kB against Pillow's default level 6, 0.078 s and
    # 372 kB; a 4x output is large and the write is on every command's path (OpenCV's own default is 1)
    extra = {"compress_level": PNG_LEVEL} if fmt == "PNG" else {}
    Image.fromarray(check_image(image, "output")).save(buf, format=fmt, **extra)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:
        raise ImageError(f"cannot write {path}: {exc.strerror or exc}") from None


def to_model(image: np.ndarray) -> np.ndarray:
    """``uint8 [H, W, 3]`` -> ``float32 [3, H, W]`` in [-1, 1]."""
    return (image.astype(np.float32).transpose(2, 0, 1) / 127.5) - 1.0


def from_model(x: np.ndarray) -> np.ndarray:
    """``float [3, H, W]`` in [-1, 1] -> ``uint8 [H, W, 3]`` (clipped, rounded)."""
    return np.clip(np.round((x.transpose(1, 2, 0) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def bicubic_resize(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize of ``float32 [3, H, W]`` per channel in float precision (Pillow, antialiased)."""
    chans = [
        np.asarray(Image.fromarray(np.ascontiguousarray(c, dtype=np.float32)).resize((width, height), Image.BICUBIC))
        for c in x
    ]
    return np.stack(chans).astype(np.float32)


def pad_to_multiple(x: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Reflect-pad ``[..., H, W]`` at the bottom/right to multiples of ``multiple``; returns (padded, (H, W))."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    pad = [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)]
    return np.pad(x, pad, mode="reflect"), (h, w)
