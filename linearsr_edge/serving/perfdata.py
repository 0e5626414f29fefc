"""Input data for NVIDIA's ``perf_analyzer`` against the ``linearsr`` model: a real frame and a real tag.

``perf_analyzer`` sends every input the model declares, optional ones too; with ``--input-data zero`` the
``tags`` input arrived as one NUL byte and every request was refused ("unknown tag '\\x00'"). The server now
reads NUL bytes in ``tags`` as padding (all-NUL: no tags), and this file gives perf_analyzer a frame of the demo
photo at the size asked, one of the bundle's tags, seed 0 and the model's steps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from linearsr_edge.bundle import Bundle
from linearsr_edge.fileio import atomic_write_text


def perf_data(bundle: Bundle, width: int, height: int) -> dict[str, Any]:
    """The ``--input-data`` JSON of one request: a ``width`` x ``height`` frame of the demo photo (reflected where
    the photo is smaller), the bundle's first tag (none when it has none), seed 0, the model's default steps."""
    from linearsr_edge.tags import NULL_TAG

    frame = demo_frame(width, height)
    vocab = bundle.tags()
    names = [] if vocab is None else [n for n in vocab.names if n != NULL_TAG]
    tag = (names[0] if names else "").encode() or b"\0"  # one NUL: no tags (perf_analyzer needs a value)
    return {
        "data": [
            {
                "image": {"content": frame.reshape(-1).tolist(), "shape": [height, width, 3]},
                "tags": {"content": list(tag), "shape": [len(tag)]},
                "seed": [0],
                "steps": [int(bundle.cfg.default_steps)],
            }
        ]
    }


def demo_frame(width: int, height: int) -> np.ndarray:
    """A ``width`` x ``height`` RGB frame of the demo photo, tiled where the photo is smaller."""
    from linearsr_edge.demo import SAMPLES_DIR
    from linearsr_edge.pipeline.imaging import read_image

    photo = read_image(SAMPLES_DIR / "astronaut_lr.png")
    reps = (-(-height // photo.shape[0]), -(-width // photo.shape[1]), 1)
    return np.ascontiguousarray(np.tile(photo, reps)[:height, :width])


def write_perf_data(bundle: Bundle, path: Path, width: int, height: int) -> Path:
    atomic_write_text(Path(path), json.dumps(perf_data(bundle, width, height)))
    return Path(path)


def perf_analyzer_command(data: Path, concurrency: str = "1:4:1", url: str = "127.0.0.1:8001") -> str:
    """The command line that worked against ``linearsr-serve`` (tritonclient 2.41.0's perf_analyzer, gRPC)."""
    return (
        f"perf_analyzer -m linearsr -i grpc -u {url} --input-data {data} --concurrency-range {concurrency} "
        "--measurement-interval 10000 --stability-percentage 50 --max-trials 5"
    )
