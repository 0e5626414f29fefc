"""Triton Python-backend model serving a linearsr-edge bundle (copied into a repository as ``1/model.py``).

Inputs: ``image`` UINT8 ``[H, W, 3]`` (RGB), optional ``seed`` INT64 ``[1]``, ``steps`` INT32 ``[1]``,
``tags`` UINT8 ``[n]`` (comma-separated UTF-8 tag names). Output: ``image`` UINT8 ``[H*s, W*s, 3]``.
Requests of one size, steps and tags that the dynamic batcher hands over together run as one
``upscale_batch``; a request that cannot be served gets an error response and the others are answered.
"""

import json
import site
import sys
from pathlib import Path

SETTINGS = json.loads(Path(__file__).with_name("linearsr.json").read_text())
# Triton's stub does not inherit PYTHONPATH and imports this file once before initialize: make the
# serving environment's packages importable first (addsitedir also runs its .pth files).
for _path in SETTINGS.get("site_packages", []):
    if _path not in sys.path:
        site.addsitedir(_path)

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402


class TritonPythonModel:
    def initialize(self, args):
        from linearsr_edge.bundle import Bundle
        from linearsr_edge.runtimes import SRRuntime, choose_backend

        bundle_path = Path(SETTINGS["bundle"])
        if not bundle_path.is_absolute():
            bundle_path = Path(__file__).resolve().parent.parent / bundle_path
        bundle = Bundle.load(bundle_path)
        name = SETTINGS.get("backend", "auto")
        info = choose_backend(bundle.format, name)
        options = info.options(**SETTINGS.get("options", {}))
        self.runtime = SRRuntime.load(bundle, backend=info.name, options=options)
        self.runtime.warmup()  # the server turns ready only after this

    def execute(self, requests):
        from linearsr_edge.process import SampleOptions

        responses = [None] * len(requests)
        self._outputs = []  # DLPack tensors borrow these arrays: keep them alive until the next call
        groups = {}
        for i, request in enumerate(requests):
            try:
                image, seed, opts = self._parse(request, SampleOptions)
                groups.setdefault((image.shape, opts), []).append((i, image, seed))
            except Exception as exc:  # a bad request: its own error, the others go on
                responses[i] = _error(exc)
        for (_, opts), items in groups.items():
            try:
                results = self.runtime.upscale_batch(
                    [img for _, img, _ in items], opts, seeds=[seed for _, _, seed in items]
                )
                for (i, _, _), result in zip(items, results, strict=True):
                    array = np.ascontiguousarray(result.image[None])
                    self._outputs.append(array)
                    tensor = _tensor("image", array)
                    responses[i] = pb_utils.InferenceResponse(output_tensors=[tensor])
            except Exception as exc:
                for i, _, _ in items:
                    responses[i] = _error(exc)
        return responses

    def _parse(self, request, SampleOptions):
        from linearsr_edge.imaging import frame_rgb

        image = _array(pb_utils.get_input_tensor_by_name(request, "image"))
        if image.ndim == 4:
            if image.shape[0] != 1:
                raise ValueError(f"one image per request, got a batch of {image.shape[0]}")
            image = image[0]
        image = frame_rgb(image)
        self.runtime.check_size(*image.shape[:2])
        seed = _scalar(request, "seed", 0)
        steps = _scalar(request, "steps", None)
        tags_tensor = pb_utils.get_input_tensor_by_name(request, "tags")
        tags = ()
        if tags_tensor is not None:
            text = _array(tags_tensor).astype(np.uint8).tobytes().decode("utf-8")
            tags = tuple(t.strip() for t in text.split(",") if t.strip())
            self.runtime.process.cond(tags)  # an unknown tag fails here, for this request only
        return image, int(seed), SampleOptions(steps=None if steps is None else int(steps), tags=tags)

    def finalize(self):
        self.runtime.close()


def _scalar(request, name, default):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return default if tensor is None else _array(tensor).reshape(-1)[0].item()


def _error(exc):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(f"{type(exc).__name__}: {exc}"))


def _array(tensor):
    """An input tensor as NumPy, through DLPack (``as_numpy`` of the NumPy-1 stub misreads under NumPy 2);
    copied, since the request's memory is not ours to keep."""
    try:
        return np.array(np.from_dlpack(tensor), copy=True)
    except (AttributeError, TypeError, BufferError, RuntimeError):
        return tensor.as_numpy()


def _tensor(name, array):
    """An output tensor. Through DLPack: the stub of the nvidia-pytriton build is compiled against
    NumPy 1, and ``pb_utils.Tensor(name, array)`` from a NumPy 2 array arrives with no data. The tensor
    borrows ``array``'s memory: the caller keeps it alive."""
    try:
        return pb_utils.Tensor.from_dlpack(name, array)
    except (AttributeError, TypeError, ValueError):  # a stub without DLPack support, or NumPy 1
        return pb_utils.Tensor(name, array)
