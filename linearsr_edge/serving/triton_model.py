"""Triton Python-backend model serving a linearsr-edge bundle (copied into a repository as ``1/model.py``).

Inputs: ``image`` UINT8 ``[H, W, 3]`` (RGB), optional ``seed`` INT64 ``[1]``, ``steps`` INT32 ``[1]``,
``tags`` UINT8 ``[n]`` (comma-separated UTF-8 tag names). Output: ``image`` UINT8 ``[H*s, W*s, 3]``.
Requests of one size, steps and tags that the dynamic batcher hands over together run as one
``upscale_batch``; a frame above the bundle's profile (a camera frame) is tiled as `SRRuntime.upscale`
tiles it. A request that cannot be served gets an error response (INVALID_ARG, HTTP 400, for a bad
request; INTERNAL for a failure of ours) and the others are answered.
"""

import json
import os
import site
import sys
from pathlib import Path

SETTINGS = json.loads(Path(__file__).with_name("linearsr.json").read_text())
# Triton's stub does not inherit PYTHONPATH and imports this file once before initialize: make the
# serving environment's packages importable first (addsitedir also runs its .pth files). They come from
# the server's environment (linearsr-serve sets LINEARSR_EDGE_SITE_PACKAGES), or, for a repository that
# references its bundle on this machine, from the settings; a relocatable one names none (in NVIDIA's
# container linearsr-edge is installed where the stub's Python finds it).
_PATHS = [*os.environ.get("LINEARSR_EDGE_SITE_PACKAGES", "").split(os.pathsep), *SETTINGS.get("site_packages", [])]
for _path in _PATHS:
    if _path and _path not in sys.path and Path(_path).is_dir():
        site.addsitedir(_path)

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402


class TritonPythonModel:
    def initialize(self, args):
        from linearsr_edge.bundle import Bundle
        from linearsr_edge.pipeline.session import choose_backend
        from linearsr_edge.runtime import SRRuntime

        bundle_path = Path(SETTINGS["bundle"])
        if not bundle_path.is_absolute():
            bundle_path = Path(__file__).resolve().parent.parent / bundle_path
        bundle = Bundle.load(bundle_path)
        name = SETTINGS.get("backend", "auto")
        info = choose_backend(bundle.format, name)
        options = info.options(**SETTINGS.get("options", {}))
        self.runtime = SRRuntime.load(bundle, backend=info.name, options=options, build="if-needed")
        self.runtime.warmup()  # the server turns ready only after this
        self.counters = _counters(args)

    def execute(self, requests):
        from linearsr_edge.pipeline.process import SampleOptions

        responses = [None] * len(requests)
        self._outputs = []  # DLPack tensors borrow these arrays: keep them alive until the next call
        groups = {}
        for i, request in enumerate(requests):
            try:
                image, seed, opts = self._parse(request, SampleOptions)
                groups.setdefault((image.shape, opts), []).append((i, image, seed))
            except Exception as exc:  # a bad request: its own error, the others go on
                responses[i] = self._error(exc)
        for (_, opts), items in groups.items():
            try:
                self._answer(items, opts, responses)
            except Exception as exc:
                if len(items) == 1:
                    responses[items[0][0]] = self._error(exc)
                    continue
                for item in items:  # one request's failure must not fail the others batched with it
                    try:
                        self._answer([item], opts, responses)
                    except Exception as alone:
                        responses[item[0]] = self._error(alone)
        self._count("success", sum(1 for r in responses if not r.has_error()))
        return responses

    def _answer(self, items, opts, responses):
        """Upscale ``items`` (index, image, seed) as one batch and put their responses in place."""
        results = self.runtime.upscale_batch([img for _, img, _ in items], opts, seeds=[seed for _, _, seed in items])
        for (i, _, _), result in zip(items, results, strict=True):
            array = np.ascontiguousarray(result.image[None])
            self._outputs.append(array)
            responses[i] = pb_utils.InferenceResponse(output_tensors=[_tensor("image", array)])

    def _error(self, exc):
        """An error response: INVALID_ARG (HTTP 400, gRPC INVALID_ARGUMENT) for a request we refuse, INTERNAL for a
        failure of ours, counted by reason in ``linearsr_request_failure``."""
        from linearsr_edge.errors import BackendRunError, LinearSRError

        message = f"{type(exc).__name__}: {exc}"
        refused = isinstance(exc, (LinearSRError, ValueError, TypeError)) and not isinstance(exc, BackendRunError)
        reason = "INVALID_ARG" if refused else "INTERNAL"
        code = getattr(pb_utils.TritonError, reason, None)
        self._count(reason, 1)
        error = pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)
        return pb_utils.InferenceResponse(output_tensors=[], error=error)

    def _count(self, what, n):
        metric = self.counters.get(what)
        if n and metric is not None:
            metric.increment(n)

    def _parse(self, request, SampleOptions):
        from linearsr_edge.pipeline.imaging import DEFAULT_MAX_OUTPUT_PIXELS, frame_rgb

        tensor = pb_utils.get_input_tensor_by_name(request, "image")
        if tensor is None:  # this Triton build passes a request without its required input on
            raise ValueError("the request has no 'image' input")
        image = _array(tensor)
        if image.ndim == 4:
            if image.shape[0] != 1:
                raise ValueError(f"one image per request, got a batch of {image.shape[0]}")
            image = image[0]
        image = frame_rgb(image)
        self.runtime.check_frame(*image.shape[:2], SETTINGS.get("max_pixels", DEFAULT_MAX_OUTPUT_PIXELS))
        seed = _scalar(request, "seed", 0)
        steps = _scalar(request, "steps", None)
        max_steps = SETTINGS.get("max_steps", 16)
        if steps is not None and not 1 <= steps <= max_steps:  # one request must not hold an instance for hours
            raise ValueError(f"steps must lie in 1..{max_steps} on this server, got {steps}")
        tags_tensor = pb_utils.get_input_tensor_by_name(request, "tags")
        tags = ()
        if tags_tensor is not None:
            # NUL bytes are padding (perf_analyzer sends an all-zero tags input): none left means no tags
            text = _array(tags_tensor).astype(np.uint8).tobytes().replace(b"\0", b"").decode("utf-8")
            tags = tuple(t.strip() for t in text.split(",") if t.strip())
            self.runtime.process.cond(tags)  # an unknown tag fails here, for this request only
        return image, int(seed), SampleOptions(steps=None if steps is None else int(steps), tags=tags)

    def finalize(self):
        self.runtime.close()


def _scalar(request, name, default):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return default if tensor is None else _array(tensor).reshape(-1)[0].item()


def _counters(args):
    """Counters on Triton's metrics endpoint: ``linearsr_request_success`` and ``linearsr_request_failure`` (label
    ``reason``: INVALID_ARG, INTERNAL). Triton's own ``nv_inference_request_failure`` counts a Python model's
    error responses as successes (it fails a request only when ``execute`` raises, which would fail every
    request of the batch, as 500): triton-inference-server/server#7713. Empty on a stub without custom metrics."""
    family = getattr(pb_utils, "MetricFamily", None)
    if family is None:
        return {}
    labels = {"model": args.get("model_name", "linearsr"), "version": args.get("model_version", "1")}
    success = family(name="linearsr_request_success", description="Requests answered", kind=family.COUNTER)
    failure = family(
        name="linearsr_request_failure", description="Requests refused or failed, by reason", kind=family.COUNTER
    )
    counters = {"success": success.Metric(labels=labels)}
    for reason in ("INVALID_ARG", "INTERNAL"):
        counters[reason] = failure.Metric(labels={**labels, "reason": reason})
    counters["_families"] = (success, failure)  # the families must outlive their metrics
    return counters


def _array(tensor):
    """An input tensor as NumPy, through DLPack (``as_numpy`` of the NumPy-1 stub misreads under NumPy 2);
    copied, since the request's memory is not ours to keep."""
    try:
        return np.array(np.from_dlpack(tensor), copy=True)
    except (AttributeError, TypeError, BufferError, RuntimeError):
        return tensor.as_numpy()


def _quiet_consumed_capsules(previous=sys.unraisablehook):
    """Drop one harmless unraisable error, pass on every other. This stub renames a DLPack capsule it consumed
    "used_dlpack" where NumPy looks for "used_dltensor", so NumPy's capsule destructor, finding neither name,
    reports "PyCapsule_GetPointer called with incorrect name" after every output tensor (a 4-line traceback in
    the server log per response) and, rightly, frees nothing: the stub owns the tensor and frees it."""

    def hook(unraisable):
        exc = unraisable.exc_value
        if not (isinstance(exc, ValueError) and "PyCapsule_GetPointer called with incorrect name" in str(exc)):
            previous(unraisable)

    return hook


sys.unraisablehook = _quiet_consumed_capsules()


def _tensor(name, array):
    """An output tensor. Through DLPack: the stub of the nvidia-pytriton build is compiled against
    NumPy 1, and ``pb_utils.Tensor(name, array)`` from a NumPy 2 array arrives with no data. The tensor
    borrows ``array``'s memory: the caller keeps it alive."""
    try:
        return pb_utils.Tensor.from_dlpack(name, array)
    except (AttributeError, TypeError, ValueError):  # a stub without DLPack support, or NumPy 1
        return pb_utils.Tensor(name, array)
