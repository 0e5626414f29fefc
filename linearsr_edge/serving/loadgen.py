"""Bounded load on a served ``linearsr`` model, from this machine to 127.0.0.1: what the serving tests and
``benchmarks/serve_load.py`` drive (perf_analyzer measures the steady sweep; these measure what it does
not: a timeline of every reply through an overload, a crash, a bundle swap, and the fuzzer's odd requests).

Every run is bounded in requests and in seconds, and sends to loopback only (`LoopbackOnly` otherwise).
A reply is one `Reply`: when it was sent and answered, its outcome (``ok``, an HTTP status such as ``503``,
or a gRPC code such as ``UNAVAILABLE``), the model version that answered, and a digest of the image.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from linearsr_edge.errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class LoopbackOnly(ConfigError):
    """A load run was pointed at another machine: these runs target this one only."""


@dataclasses.dataclass(frozen=True)
class Reply:
    sent: float  # time.monotonic() when the request left
    done: float
    outcome: str  # "ok", an HTTP status ("400", "503"), a gRPC code ("UNAVAILABLE"), or "no reply: <why>"
    version: str | None = None  # the model version that answered
    digest: str | None = None  # of the image returned
    shape: tuple[int, ...] | None = None  # of the image returned
    message: str = ""
    image: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)  # when asked to keep it

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def latency(self) -> float:
        return self.done - self.sent


def check_loopback(url: str) -> str:
    host = (url.rsplit(":", 1)[0] if ":" in url else url).strip("[]")
    if host not in LOOPBACK:
        raise LoopbackOnly(f"load runs target this machine only (127.0.0.1); got {url!r}")
    return url


def free_ports(n: int) -> list[int]:
    """``n`` TCP ports free on 127.0.0.1 now (for a server's HTTP, gRPC and metrics endpoints)."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def digest(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()[:16]


class Client:
    """One connection (HTTP or gRPC) sending ``image`` frames to the model; `send` never raises for a reply the
    server gave: it returns it as a `Reply`."""

    def __init__(self, url: str, protocol: str = "http", timeout: float = 120.0) -> None:
        check_loopback(url)
        if protocol not in ("http", "grpc"):
            raise ConfigError(f"protocol must be http or grpc, got {protocol!r}")
        self.protocol, self.timeout = protocol, timeout
        if protocol == "http":
            import tritonclient.http as module

            self.client = module.InferenceServerClient(url, connection_timeout=timeout, network_timeout=timeout)
        else:
            import tritonclient.grpc as module

            self.client = module.InferenceServerClient(url)
        self.module = module

    def send(self, frame: np.ndarray, seed: int | None = None, tags: bytes | None = None, keep: bool = False) -> Reply:
        """One request; ``keep``: the reply holds the image returned."""
        inputs = [self.module.InferInput("image", [1, *frame.shape], "UINT8")]
        self._set(inputs[0], frame[None])
        if seed is not None:
            inputs.append(self.module.InferInput("seed", [1, 1], "INT64"))
            self._set(inputs[-1], np.array([[seed]], np.int64))
        if tags is not None:
            inputs.append(self.module.InferInput("tags", [1, len(tags)], "UINT8"))
            self._set(inputs[-1], np.frombuffer(tags, np.uint8)[None])
        return self.call(lambda: self._infer(inputs), keep)

    def _set(self, tensor, array: np.ndarray) -> None:
        if self.protocol == "http":
            tensor.set_data_from_numpy(array, binary_data=True)
        else:
            tensor.set_data_from_numpy(array)

    def _infer(self, inputs):
        if self.protocol == "http":
            return self.client.infer("linearsr", inputs, timeout=None)
        return self.client.infer("linearsr", inputs, client_timeout=self.timeout)

    def call(self, infer: Callable[[], object], keep: bool = False) -> Reply:
        """Run ``infer`` (a request on this client) and record its reply (with the image, when ``keep``)."""
        from tritonclient.utils import InferenceServerException

        sent = time.monotonic()
        try:
            result = infer()
        except InferenceServerException as exc:
            return Reply(sent, time.monotonic(), outcome_of(exc), message=str(exc)[:300])
        except Exception as exc:  # the connection broke: no reply at all
            return Reply(sent, time.monotonic(), f"no reply: {type(exc).__name__}", message=str(exc)[:300])
        image = result.as_numpy("image")
        response = result.get_response()
        version = response["model_version"] if self.protocol == "http" else response.model_version
        if image is None:
            return Reply(sent, time.monotonic(), "ok", version)
        kept = image[0] if keep else None
        return Reply(sent, time.monotonic(), "ok", version, digest(image[0]), tuple(image.shape[1:]), image=kept)

    def close(self) -> None:
        self.client.close()


def outcome_of(exc) -> str:
    """The HTTP status (``"503"``) or gRPC code (``"UNAVAILABLE"``) of a client exception."""
    status = str(exc.status() or "")
    return status.removeprefix("StatusCode.") or "error"


def closed_loop(
    url: str,
    frame: np.ndarray,
    clients: int,
    seconds: float,
    max_requests: int,
    protocol: str = "http",
    stop: threading.Event | None = None,
) -> list[Reply]:
    """``clients`` threads, each sending the next request when the last is answered, for ``seconds`` or until
    ``max_requests`` were sent in all (or ``stop`` is set); every reply, in order of sending."""
    check_loopback(url)
    deadline = time.monotonic() + seconds
    stop = stop or threading.Event()
    budget = iter(range(max_requests))
    lock = threading.Lock()
    replies: list[Reply] = []

    def worker() -> None:
        client = Client(url, protocol)
        try:
            while time.monotonic() < deadline and not stop.is_set():
                with lock:
                    if next(budget, None) is None:
                        return
                reply = client.send(frame)
                with lock:
                    replies.append(reply)
        finally:
            client.close()

    _run_threads(worker, clients)
    return sorted(replies, key=lambda r: r.sent)


class Background:
    """`closed_loop` in a thread, while the caller does something to the server (kills a stub, loads a version):
    ``with Background(url, frame, clients=2, seconds=60, max_requests=2000) as load: ...``; leaving the block
    stops the clients (after their requests in flight) and ``load.replies`` holds every reply."""

    def __init__(self, url: str, frame: np.ndarray, clients: int, seconds: float, max_requests: int) -> None:
        check_loopback(url)
        self.replies: list[Reply] = []
        self.stop = threading.Event()
        self.started = 0.0
        self._thread = threading.Thread(
            target=lambda: self.replies.extend(closed_loop(url, frame, clients, seconds, max_requests, stop=self.stop)),
            daemon=True,
        )

    def __enter__(self) -> Background:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self._thread.join()

    def wait(self) -> list[Reply]:
        """Until the clients end on their own (their seconds or requests spent); the replies."""
        self._thread.join()
        return self.replies


def open_loop(
    url: str, frame: np.ndarray, rate: float, seconds: float, protocol: str = "http", max_in_flight: int = 64
) -> list[Reply]:
    """Requests sent at ``rate`` per second whatever the replies (load that does not slow down when the server
    does, as cameras send), for ``seconds``; at most ``max_in_flight`` wait for a reply (more are counted as
    ``"no reply: client saturated"``, so the run stays bounded)."""
    check_loopback(url)
    if not rate > 0:
        raise ConfigError(f"rate must be > 0, got {rate!r}")
    local = threading.local()
    clients: list[Client] = []
    lock = threading.Lock()
    in_flight = threading.Semaphore(max_in_flight)
    replies: list[Reply] = []

    def one() -> None:
        try:
            if not hasattr(local, "client"):
                local.client = Client(url, protocol)
                with lock:
                    clients.append(local.client)
            reply = local.client.send(frame)
            with lock:
                replies.append(reply)
        finally:
            in_flight.release()

    start = time.monotonic()
    with ThreadPoolExecutor(max_in_flight) as pool:
        n = 0
        while (due := start + n / rate) < start + seconds:
            time.sleep(max(0.0, due - time.monotonic()))
            if in_flight.acquire(blocking=False):
                pool.submit(one)
            else:
                now = time.monotonic()
                with lock:
                    replies.append(Reply(now, now, "no reply: client saturated"))
            n += 1
    for client in clients:
        client.close()
    return sorted(replies, key=lambda r: r.sent)


def _run_threads(target: Callable[[], None], n: int) -> None:
    threads = [threading.Thread(target=target, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def counts(replies: Iterable[Reply]) -> dict[str, int]:
    return dict(Counter(r.outcome for r in replies).most_common())


def percentile(values: Iterable[float], q: float) -> float:
    values = list(values)
    return float(np.percentile(values, q)) if values else float("nan")


def rss_bytes(pgid: int) -> int:
    """Resident memory of every process in the process group ``pgid`` (the server and its Python stubs)."""
    from pathlib import Path

    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[2]) == pgid:  # field 5, the process group
                total += process_rss(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return total


def process_rss(pid: int) -> int:
    """Resident memory of one process, in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssSampler:
    """``with RssSampler(pgid) as rss: ...``: the process group's RSS every ``every`` seconds, as
    ``(seconds since start, bytes)`` in ``rss.samples``."""

    def __init__(self, pgid: int, every: float = 1.0) -> None:
        self.pgid, self.every = pgid, every
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while True:
            self.samples.append((time.monotonic() - start, rss_bytes(self.pgid)))
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
