"""Random requests to a served ``linearsr`` model, over HTTP and gRPC, from a fixed seed: shapes, dtypes, ranks,
sizes, tag strings, step counts, truncated and malformed bodies. Each is built by hand (KServe v2 over HTTP
with its binary extension; gRPC's ``ModelInferRequest``), not through tritonclient's checks, so that what
a careless or hostile client can send reaches the server. `fuzz` returns one `Sent` per request: the kind of
oddity, the protocol, and the reply's outcome (HTTP status or gRPC code; ``no reply: ...`` when none came).

The server must answer every request, and stay ready for the next; the tests and
``benchmarks/serve_load.py --fuzz`` check that, and a good request after them.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from linearsr_edge.serving.loadgen import check_loopback

DTYPES = {"UINT8": np.uint8, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
          "FP16": np.float16, "FP32": np.float32, "FP64": np.float64, "BOOL": np.bool_}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: bytes  # raw little-endian bytes, possibly fewer or more than the shape needs


@dataclasses.dataclass(frozen=True)
class Request:
    kind: str
    tensors: tuple[Tensor, ...]
    malformed: bytes | None = None  # an HTTP body sent as it is (bad JSON, wrong header length)


@dataclasses.dataclass(frozen=True)
class Sent:
    kind: str
    protocol: str
    outcome: str


def tensor(name: str, array: np.ndarray, datatype: str | None = None) -> Tensor:
    datatype = datatype or next(k for k, v in DTYPES.items() if np.dtype(v) == array.dtype)
    return Tensor(name, datatype, tuple(array.shape), np.ascontiguousarray(array).tobytes())


class Generator:
    """Random requests for a model with ``tags`` and inputs of ``min_side`` .. ``max_side`` pixels a side (the
    valid ones); ``big_side`` makes frames whose output passes the server's pixel limit."""

    def __init__(self, seed: int, tags: Sequence[str], min_side: int, max_side: int, big_side: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.tags, self.min_side, self.max_side, self.big_side = list(tags), min_side, max_side, big_side
        self.kinds: dict[str, Callable[[], Request]] = {
            "valid": self.valid, "dtype": self.dtype, "rank": self.rank, "channels": self.channels,
            "zero": self.zero, "small": self.small, "large": self.large, "tags": self.bad_tags,
            "steps": self.steps, "seed": self.seed, "batch": self.batch, "truncated": self.truncated,
            "surplus": self.surplus, "missing": self.missing, "unknown input": self.unknown,
            "malformed": self.malformed,
        }  # fmt: skip

    def __call__(self) -> Request:
        kinds = list(self.kinds)
        weights = np.array([4.0 if k == "valid" else 0.4 if k == "large" else 1.0 for k in kinds])
        return self.kinds[kinds[self.rng.choice(len(kinds), p=weights / weights.sum())]]()

    def _side(self) -> int:
        return int(self.rng.integers(self.min_side, self.max_side + 1))

    def _frame(self, h: int | None = None, w: int | None = None, c: int = 3) -> np.ndarray:
        h, w = h or self._side(), w or self._side()
        return self.rng.integers(0, 256, (1, h, w, c), dtype=np.uint8)

    def _extras(self) -> list[Tensor]:
        extras = []
        if self.rng.random() < 0.5:
            extras.append(tensor("seed", np.array([[self.rng.integers(0, 2**31)]], np.int64)))
        if self.tags and self.rng.random() < 0.5:
            names = self.rng.choice(self.tags, size=int(self.rng.integers(1, 3)))
            extras.append(tensor("tags", np.frombuffer(",".join(names).encode(), np.uint8)[None]))
        return extras

    def valid(self) -> Request:
        return Request("valid", (tensor("image", self._frame()), *self._extras()))

    def dtype(self) -> Request:
        name = str(self.rng.choice([k for k in DTYPES if k != "UINT8"]))
        array = self._frame().astype(DTYPES[name])
        return Request("dtype", (tensor("image", array, name),))

    def rank(self) -> Request:
        rank = int(self.rng.choice([1, 2, 3, 5]))
        shape = tuple(int(self.rng.integers(1, 24)) for _ in range(rank))
        return Request("rank", (tensor("image", self.rng.integers(0, 256, shape, dtype=np.uint8)),))

    def channels(self) -> Request:
        return Request("channels", (tensor("image", self._frame(c=int(self.rng.choice([1, 2, 4, 8])))),))

    def zero(self) -> Request:
        h, w = (0, self._side()) if self.rng.random() < 0.5 else (self._side(), 0)
        return Request("zero", (Tensor("image", "UINT8", (1, h, w, 3), b""),))

    def small(self) -> Request:
        side = int(self.rng.integers(1, self.min_side))
        return Request("small", (tensor("image", self._frame(side, self._side())),))

    def large(self) -> Request:
        return Request("large", (tensor("image", self._frame(self.big_side, self.big_side)),))

    def bad_tags(self) -> Request:
        choice = int(self.rng.integers(0, 5))
        raw = [
            bytes(self.rng.integers(0, 256, int(self.rng.integers(1, 64)), dtype=np.uint8)),  # not UTF-8, mostly
            b"no-such-tag",
            b",,," + (self.tags[0].encode() if self.tags else b"") + b",,",
            ("x" * 4096).encode(),
            "\u00e9t\u00e9,\u2603".encode(),
        ][choice]
        return Request("tags", (tensor("image", self._frame()), tensor("tags", np.frombuffer(raw, np.uint8)[None])))

    def steps(self) -> Request:
        value = int(self.rng.choice([0, -1, -(2**31), 10**6, 2**31 - 1]))
        return Request("steps", (tensor("image", self._frame()), tensor("steps", np.array([[value]], np.int32))))

    def seed(self) -> Request:
        name = str(self.rng.choice(["INT32", "FP32", "UINT8"]))
        return Request("seed", (tensor("image", self._frame()), tensor("seed", np.ones((1, 1), DTYPES[name]), name)))

    def batch(self) -> Request:
        return Request("batch", (tensor("image", np.concatenate([self._frame(20, 20), self._frame(20, 20)])),))

    def truncated(self) -> Request:
        good = tensor("image", self._frame())
        cut = int(self.rng.integers(0, len(good.data)))
        return Request("truncated", (dataclasses.replace(good, data=good.data[:cut]),))

    def surplus(self) -> Request:
        good = tensor("image", self._frame())
        return Request("surplus", (dataclasses.replace(good, data=good.data + b"\1" * int(self.rng.integers(1, 99))),))

    def missing(self) -> Request:
        return Request("missing", (tensor("seed", np.zeros((1, 1), np.int64)),))

    def unknown(self) -> Request:
        return Request("unknown input", (tensor("image", self._frame()), tensor("mask", self._frame())))

    def malformed(self) -> Request:
        bodies = [b"{", b"not json", b'{"inputs": 7}', b'{"inputs": [{"name": "image"}]}', b"\xff\xfe" * 20,
                  json.dumps({"inputs": [{"name": "image", "shape": [1, 2, 2, 3], "datatype": "UINT8",
                                          "data": ["a"] * 12}]}).encode()]  # fmt: skip
        return Request("malformed", (), malformed=bodies[int(self.rng.integers(0, len(bodies)))])


# -- sending, by hand -----------------------------------------------------------------------------
def send_http(url: str, request: Request, timeout: float = 120.0) -> str:
    """POST the request as KServe v2 JSON with binary tensors; the reply's HTTP status."""
    host, port = url.rsplit(":", 1)
    headers = {"Content-Type": "application/octet-stream"}
    if request.malformed is not None:
        body = request.malformed
        headers["Content-Type"] = "application/json"
    else:
        inputs = [
            {"name": t.name, "shape": list(t.shape), "datatype": t.datatype,
             "parameters": {"binary_data_size": len(t.data)}}
            for t in request.tensors
        ]  # fmt: skip
        if request.kind == "truncated":  # declare the full size, send less: the body ends early
            inputs[0]["parameters"]["binary_data_size"] = int(np.prod(request.tensors[0].shape)) * 1
        header = json.dumps({"inputs": inputs, "outputs": [{"name": "image", "parameters": {"binary_data": True}}]})
        body = header.encode() + b"".join(t.data for t in request.tensors)
        headers["Inference-Header-Content-Length"] = str(len(header))
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("POST", "/v2/models/linearsr/infer", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return str(response.status)
    except (OSError, http.client.HTTPException) as exc:
        return f"no reply: {type(exc).__name__}"
    finally:
        connection.close()


class GrpcSender:
    def __init__(self, url: str) -> None:
        import grpc
        from tritonclient.grpc import service_pb2, service_pb2_grpc

        self.grpc, self.pb = grpc, service_pb2
        self.channel = grpc.insecure_channel(
            url, options=[("grpc.max_send_message_length", 2**31 - 1), ("grpc.max_receive_message_length", 2**31 - 1)]
        )
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)

    def __call__(self, request: Request, timeout: float = 120.0) -> str:
        """ModelInfer with the tensors as raw contents; the reply's gRPC code (``OK`` when answered)."""
        pb = self.pb
        if request.malformed is not None:  # gRPC has no JSON to break: an input with no datatype and no shape
            message = pb.ModelInferRequest(model_name="linearsr", inputs=[pb.ModelInferRequest.InferInputTensor(
                name="image")], raw_input_contents=[request.malformed])  # fmt: skip
        else:
            message = pb.ModelInferRequest(
                model_name="linearsr",
                inputs=[pb.ModelInferRequest.InferInputTensor(name=t.name, datatype=t.datatype, shape=list(t.shape))
                        for t in request.tensors],
                raw_input_contents=[t.data for t in request.tensors],
            )  # fmt: skip
        try:
            self.stub.ModelInfer(message, timeout=timeout)
            return "OK"
        except self.grpc.RpcError as exc:
            code = exc.code()
            if code == self.grpc.StatusCode.DEADLINE_EXCEEDED:
                return "no reply: deadline exceeded"
            return code.name

    def close(self) -> None:
        self.channel.close()


def fuzz(http_url: str, grpc_url: str, n: int, generator: Generator) -> list[Sent]:
    """``n`` random requests, each sent once over HTTP and once over gRPC (``2 n`` in all), one after another."""
    check_loopback(http_url), check_loopback(grpc_url)
    sender = GrpcSender(grpc_url)
    sent = []
    try:
        for _ in range(n):
            request = generator()
            sent.append(Sent(request.kind, "http", send_http(http_url, request)))
            sent.append(Sent(request.kind, "grpc", sender(request)))
    finally:
        sender.close()
    return sent


def table(sent: Sequence[Sent]) -> dict[str, dict[str, int]]:
    """Counts of outcomes by kind of request (``{kind: {outcome: n}}``), protocols apart (``http 400``)."""
    out: dict[str, Counter] = {}
    for s in sent:
        out.setdefault(s.kind, Counter())[f"{s.protocol} {s.outcome}"] += 1
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}
