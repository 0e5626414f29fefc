"""A Triton model repository for a bundle, and a local Triton server on it.

`write_repository` writes ``<repo>/linearsr/config.pbtxt`` (Python backend, dynamic batching,
instance group) and ``1/model.py`` with its settings in ``1/linearsr.json`` (bundle path or a copy
inside the repository, backend and options, the site-packages the model imports from). The same
repository runs in NVIDIA's Triton container on a GPU node.

`TritonServer` starts the ``tritonserver`` binary that ships in the ``nvidia-pytriton`` wheel (Python
backend only, which is all this model needs) on a temporary copy of that repository, bound to
127.0.0.1 by default, waits until it is ready (after the model's warm-up), and stops it with
SIGTERM, removing its temporary folder. Two traps of that build are handled here: the Python
stub links the system libpython (``LD_LIBRARY_PATH`` gets the interpreter's LIBDIR) and needs the
wheel's bundled libraries even without a GPU.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import secrets
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from linearsr_edge.errors import BackendUnavailableError, ConfigError, LinearSRError
from linearsr_edge.pipeline.imaging import DEFAULT_MAX_OUTPUT_PIXELS

MODEL = "linearsr"
MAX_BATCH = 8  # the dynamic batcher's largest batch
MIN_MAX_STEPS = 16  # requests may ask for up to max(16, 4 x the model's default) steps (more: 400)
KINDS = ("KIND_CPU", "KIND_GPU")


ADMIN_HEADER = "linearsr-admin-key"  # the HTTP header that opens the restricted API groups
GRPC_ADMIN_HEADER = f"triton-grpc-protocol-{ADMIN_HEADER}"  # the same over gRPC (Triton prefixes it)
RESTRICTED_HTTP = "model-repository,shared-memory,logging,trace"  # statistics stay open: perf_analyzer reads them
RESTRICTED_GRPC = "model-repository,shared-memory,logging,trace"


class ServeError(LinearSRError):
    """The server could not start or stop as asked."""


@dataclasses.dataclass(frozen=True)
class QueuePolicy:
    """Triton's ``default_queue_policy``: at most ``max_queue_size`` requests wait, none longer than
    ``timeout_us``; the others are refused at once (``timeout_action: REJECT``: HTTP 503 / gRPC UNAVAILABLE)
    instead of growing the queue and every client's latency. 0 means no limit (Triton's meaning)."""

    max_queue_size: int
    timeout_us: int

    def __post_init__(self) -> None:
        for name in ("max_queue_size", "timeout_us"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"queue policy: {name} must be an integer >= 0 (0: no limit), got {value!r}")

    @classmethod
    def sized(cls, request_s: float, max_batch: int, instances: int) -> QueuePolicy:
        """From one request's latency: one full batch may wait per instance (an admitted request waits for at most
        the batch running and its own: on a CPU a batch of n takes about n requests' time), and none longer
        than twice the time to serve that queue and a batch. Closed-loop clients up to two batches per
        instance are served without a refusal; load beyond what the instances serve fills the queue, and the
        excess is refused at once. A frame larger than the one measured takes longer: set ``timeout_us``."""
        if not request_s > 0:
            raise ConfigError(f"one request's latency must be > 0 s, got {request_s!r}")
        timeout_us = max(int(2 * (max_batch + max_batch) * request_s * 1e6), 10_000)
        return cls(max_queue_size=max_batch * instances, timeout_us=timeout_us)

    def pbtxt(self) -> str:
        return (
            "  default_queue_policy {\n"
            "    timeout_action: REJECT\n"
            f"    default_timeout_microseconds: {self.timeout_us}\n"
            "    allow_timeout_override: false\n"
            f"    max_queue_size: {self.max_queue_size}\n"
            "  }\n"
        )


def config_pbtxt(
    max_batch: int, max_queue_delay_us: int, instances: int, kind: str, queue: QueuePolicy | None = None
) -> str:
    """Triton's model configuration: inputs, output, dynamic batching with its queue policy, instance group,
    and the version policy (the newest version is served: a new bundle goes live as version N+1).

    ``tags`` is UTF-8 text, comma-separated, as UINT8 (not BYTES: the Python stub of the nvidia-pytriton
    build crashed deserializing any BYTES input here, taking the model down for every client)."""
    if kind not in KINDS:
        raise ConfigError(f"instance kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if instances < 1 or max_batch < 1 or max_queue_delay_us < 0:
        raise ConfigError("instances and max batch must be >= 1, the queue delay >= 0")
    return f"""name: "{MODEL}"
backend: "python"
max_batch_size: {max_batch}
version_policy: {{ latest: {{ num_versions: 1 }} }}
input [
  {{ name: "image" data_type: TYPE_UINT8 dims: [ -1, -1, 3 ] }},
  {{ name: "seed" data_type: TYPE_INT64 dims: [ 1 ] optional: true }},
  {{ name: "steps" data_type: TYPE_INT32 dims: [ 1 ] optional: true }},
  {{ name: "tags" data_type: TYPE_UINT8 dims: [ -1 ] optional: true }}
]
output [
  {{ name: "image" data_type: TYPE_UINT8 dims: [ -1, -1, 3 ] }}
]
dynamic_batching {{
  max_queue_delay_microseconds: {max_queue_delay_us}
{"" if queue is None else queue.pbtxt()}}}
instance_group [ {{ count: {instances} kind: {kind} }} ]
"""


def request_latency(bundle: Any, backend: str = "auto", options: Any = None) -> float:
    """Seconds one request takes on this machine: the bundle in process on a frame of its optimal input size,
    after a warm-up (median of 3). What `QueuePolicy.sized` sizes the queue from."""
    import statistics

    from linearsr_edge.runtime import SRRuntime

    with SRRuntime.load(bundle, backend=backend, options=options) as rt:
        rt.warmup()
        return statistics.median(rt.warmup() for _ in range(3))


def queue_policy(
    bundle: Any,
    instances: int = 1,
    backend: str = "auto",
    options: Any = None,
    max_queue_size: int | None = None,
    timeout_us: int | None = None,
) -> tuple[QueuePolicy, str]:
    """The queue policy ``linearsr-serve``, ``linearsr-triton`` and ``linearsr-export --triton-repo`` write: what is
    given, the rest sized from one request measured here (`request_latency`, `QueuePolicy.sized`); with a line
    that tells the operator what was chosen and how to change it."""
    if max_queue_size is not None and timeout_us is not None:
        policy = QueuePolicy(max_queue_size, timeout_us)
        return policy, f"queue: {_describe(policy)} (as given)"
    latency = request_latency(bundle, backend, options)
    sized = QueuePolicy.sized(latency, MAX_BATCH, instances)
    policy = QueuePolicy(
        sized.max_queue_size if max_queue_size is None else max_queue_size,
        sized.timeout_us if timeout_us is None else timeout_us,
    )
    return policy, (
        f"queue: {_describe(policy)} (one request measured here: {latency * 1000:.0f} ms; --max-queue-size, "
        "--queue-timeout-ms set them)"
    )


def _describe(policy: QueuePolicy) -> str:
    wait = f"none longer than {policy.timeout_us / 1000:.0f} ms" if policy.timeout_us else "without a time limit"
    return f"at most {policy.max_queue_size or 'any number of'} requests wait, {wait}"


def write_repository(
    bundle: str | Path,
    repo: str | Path,
    backend: str = "auto",
    options: Any = None,
    max_queue_delay_us: int = 2000,
    instances: int = 1,
    kind: str = "KIND_CPU",
    copy_bundle: bool = False,
    max_batch: int = MAX_BATCH,
    max_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
    queue: QueuePolicy | None = None,
    version: int = 1,
) -> Path:
    """Write the model repository (or, with ``version``, one more version of its model); returns the model
    folder. ``copy_bundle``: put the bundle inside the repository and name no path of this machine, so that the
    repository can move (into a container, to another host) and still serve; else it references the bundle and
    this interpreter's site-packages by absolute path. ``max_pixels``: requests whose output would exceed it
    are refused (400). ``queue``: the queue policy (`QueuePolicy.sized` from `request_latency` is the
    command's default); None writes none. The newest version is served: a server in explicit model-control
    mode (``linearsr-serve``) takes version N+1 live on a load call, without dropping a request."""
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ConfigError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"the model version must be an integer >= 1, got {version!r}")
    from linearsr_edge.bundle import Bundle
    from linearsr_edge.fileio import atomic_write_text

    bundle = Bundle.load(bundle)  # verified before it is served
    repo = Path(repo)
    model = repo / MODEL
    folder = model / str(version)
    folder.mkdir(parents=True, exist_ok=True)
    if copy_bundle:  # inside the version's folder: each version keeps its own bundle
        target = folder / "bundle"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(bundle.path, target)
        bundle_ref = f"{version}/bundle"  # relative to the model's folder
    else:
        bundle_ref = str(bundle.path.resolve())
    from linearsr_edge.options import changed_fields

    option_fields = {} if options is None else {k: _jsonable(v) for k, v in changed_fields(options).items()}
    max_steps = max(MIN_MAX_STEPS, 4 * int(bundle.cfg.default_steps))  # a request costs at most 4 default ones
    settings = {"bundle": bundle_ref, "backend": backend, "options": option_fields, "max_pixels": max_pixels,
                "max_steps": max_steps}  # fmt: skip
    if not copy_bundle:  # tied to this machine anyway (the bundle's absolute path): its packages too
        settings["site_packages"] = site_packages()
    # the version's files first, the configuration last: a server never reads a version without its model
    atomic_write_text(folder / "linearsr.json", json.dumps(settings, indent=2) + "\n")
    shutil.copyfile(Path(__file__).with_name("triton_model.py"), folder / "model.py.tmp")
    os.replace(folder / "model.py.tmp", folder / "model.py")
    atomic_write_text(model / "config.pbtxt", config_pbtxt(max_batch, max_queue_delay_us, instances, kind, queue))
    return model


def versions(repo: str | Path) -> list[int]:
    """The model versions a repository holds, oldest first."""
    model = Path(repo) / MODEL
    if not model.is_dir():
        return []
    return sorted(int(p.name) for p in model.iterdir() if p.name.isdigit() and (p / "model.py").is_file())


def max_input_bytes(max_pixels: int, upscale: int) -> int:
    """The largest request body a server needs for ``max_pixels`` output pixels: the input frame's bytes
    (``max_pixels / upscale**2`` RGB pixels) as JSON text (up to 4 bytes a value: ``255,``), plus 64 KiB for
    the other inputs and the JSON around them. Triton's ``--http-max-input-size``."""
    return 4 * 3 * (max_pixels // (upscale * upscale)) + 65536


def _jsonable(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def site_packages() -> list[str]:
    """Where this interpreter finds linearsr-edge and its backends (the model imports from there)."""
    paths = [*site.getsitepackages(), site.getusersitepackages()]
    import linearsr_edge

    paths.append(str(Path(linearsr_edge.__file__).resolve().parent.parent))  # a source checkout
    return [p for p in dict.fromkeys(paths) if Path(p).is_dir()]


# -- the local server -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TritonInstall:
    binary: Path
    backend_files: tuple[Path, ...]  # libtriton_python.so, triton_python_backend_utils.py
    stub: Path
    libs: Path | None

    @classmethod
    def find(cls) -> TritonInstall:
        """The tritonserver of the ``nvidia-pytriton`` wheel, with the Python stub for this interpreter."""
        spec = importlib.util.find_spec("pytriton")
        if spec is None or spec.origin is None:
            raise BackendUnavailableError(
                "linearsr-serve needs a tritonserver: pip install --no-deps nvidia-pytriton (its binary; the "
                "--no-deps keeps numpy 2) plus pip install 'linearsr-edge[serve]', or run the repository from "
                "linearsr-triton in NVIDIA's Triton container"
            )
        root = Path(spec.origin).parent / "tritonserver"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
        binary = root / "bin" / "tritonserver"
        if not binary.is_file() or not stub.is_file():
            raise BackendUnavailableError(f"{root} lacks tritonserver or a Python {version} stub")
        libs = next((p for p in Path(spec.origin).parent.parent.glob("nvidia_pytriton.libs")), None)
        backend = root / "backends" / "python"
        return cls(binary, tuple(sorted(p for p in backend.iterdir() if p.is_file())), stub, libs)

    def has_flag(self, flag: str) -> bool:
        """Whether this tritonserver takes ``flag`` (builds differ: 0.7.0's has no ``--http-max-input-size``)."""
        return flag in _help_text(str(self.binary), str(self.libs or ""))


@functools.lru_cache(maxsize=4)
def _help_text(binary: str, libs: str) -> str:
    env = {**os.environ, "LD_LIBRARY_PATH": ":".join(p for p in (sysconfig.get_config_var("LIBDIR"), libs) if p)}
    try:
        done = subprocess.run([binary, "--help"], capture_output=True, text=True, errors="replace", env=env, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout + done.stderr


def _instance_count(config: Path) -> int:
    """The instance_group count of a repository's configuration (what the supervisor expects to live)."""
    import re

    counts = re.findall(r"count:\s*(\d+)", config.read_text())
    return sum(int(c) for c in counts) or 1


class TritonServer:
    """``with TritonServer(bundle) as server: ...``: a tritonserver on 127.0.0.1 serving the bundle; or, with
    ``repo=``, serving a repository `write_repository` wrote (``bundle`` None)."""

    def __init__(
        self,
        bundle: str | Path | None,
        host: str = "127.0.0.1",
        http_port: int = 8000,
        grpc_port: int = 8001,
        metrics_port: int = 8002,
        instances: int = 1,
        backend: str = "auto",
        options: Any = None,
        max_queue_delay_us: int = 2000,
        log: Path | None = None,
        repo: str | Path | None = None,
        max_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
        admin_key: str | None = None,
        queue: QueuePolicy | None = None,
        supervise: bool = True,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        if admin_key is not None and (not admin_key or any(c in admin_key for c in ",:= \n")):
            raise ConfigError("the admin key must be non-empty, without ',', ':', '=', spaces or newlines")
        if (bundle is None) == (repo is None):
            raise ConfigError("serve a bundle or a repository (linearsr-triton), one of the two")
        if repo is not None and not (Path(repo) / MODEL / "config.pbtxt").is_file():
            raise ConfigError(f"{repo} is not a repository written by linearsr-triton: {MODEL}/config.pbtxt is missing")
        self.repo = None if repo is None else Path(repo)
        self.max_pixels = max_pixels
        self.bundle, self.host = (None if bundle is None else Path(bundle)), host
        self.http_port, self.grpc_port, self.metrics_port = http_port, grpc_port, metrics_port
        self.instances, self.backend, self.options = instances, backend, options
        self.max_queue_delay_us, self.log = max_queue_delay_us, log
        # model control, shared memory, logging and trace answer only requests carrying this key in
        # the ADMIN_HEADER (Triton's restricted API groups); inference, health, metadata, statistics stay open
        self.admin_key = admin_key or secrets.token_urlsafe(18)
        self.queue = queue  # for a bundle: the queue policy written (None: none)
        # a model instance whose Python stub dies (killed, out of memory) is not restarted by Triton: its
        # requests fail ("Stub process ... is not healthy") until the model is loaded again, which the
        # supervisor does (model control, explicit mode); restarts holds when it did
        self.supervise, self.notify = supervise, notify
        self.restarts: list[float] = []
        self._stopping = threading.Event()
        self._loading = threading.Lock()
        self._supervisor: threading.Thread | None = None
        self._stub_path: str | None = None
        self.process: subprocess.Popen | None = None
        self.tmp: Path | None = None
        self._out = None  # the log file, when one was given

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def command(self, install: TritonInstall, repo: Path, backends: Path, max_input: int | None = None) -> list[str]:
        bounded = [] if max_input is None else [f"--http-max-input-size={max_input}"]
        return [
            str(install.binary),
            f"--model-repository={repo}",
            f"--backend-directory={backends}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            f"--http-restricted-api={RESTRICTED_HTTP}:{ADMIN_HEADER}={self.admin_key}",
            f"--grpc-restricted-protocol={RESTRICTED_GRPC}:{ADMIN_HEADER}={self.admin_key}",
            # no request object kept for reuse: each kept one holds its largest message (up to 2 GiB over gRPC), so
            # the default pool of 8 let oversize requests grow the server by their size, each time, up to 8 of them
            "--grpc-infer-allocation-pool-size=0",
            "--model-control-mode=explicit",  # versions go live, and dead instances come back, by a load call
            f"--load-model={MODEL}",
            *bounded,
            "--exit-on-error=true",
            "--exit-timeout-secs=5",  # open client connections must not hold SIGTERM past the 10 s limit
            "--log-verbose=0",
        ]

    def start(self, timeout: float = 120.0) -> TritonServer:
        if self.process is not None and self.process.poll() is None:  # a second one would orphan the first
            raise ServeError(f"this server is already running (pid {self.process.pid}); stop it first")
        install = TritonInstall.find()
        self.tmp = Path(tempfile.mkdtemp(prefix="linearsr-serve-"))
        try:
            repo = self.repo
            upscale = 1  # a repository's bundles are not read here: the body bound assumes no upscaling
            if repo is None:
                from linearsr_edge.bundle import Bundle

                repo = self.tmp / "models"
                write_repository(
                    self.bundle, repo, self.backend, self.options, self.max_queue_delay_us, self.instances,
                    max_pixels=self.max_pixels, queue=self.queue,
                )  # fmt: skip
                upscale = Bundle.load(self.bundle).cfg.upscale
            else:
                self.instances = _instance_count(repo / MODEL / "config.pbtxt")
            backends = self.tmp / "backends" / "python"
            backends.mkdir(parents=True)
            for f in (*install.backend_files, install.stub):
                shutil.copy2(f, backends / f.name)
            self._stub_path = str(backends / install.stub.name)  # this server's stubs run this copy
            env = self._env(install)
            max_input = max_input_bytes(self.max_pixels, upscale) if install.has_flag("--http-max-input-size") else None
            self._out = open(self.log, "ab") if self.log else None  # noqa: SIM115 (closed in stop)
            self.process = subprocess.Popen(
                self.command(install, repo, backends.parent, max_input),
                env=env,
                stdout=self._out or subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends the stubs too
            )
            self._wait_ready(timeout)
            if self.supervise:
                self._stopping.clear()
                self._supervisor = threading.Thread(target=self._watch, name="linearsr-serve-supervisor", daemon=True)
                self._supervisor.start()
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def _env(install: TritonInstall) -> dict[str, str]:
        env = dict(os.environ)
        libdirs = [sysconfig.get_config_var("LIBDIR") or "", str(install.libs or "")]
        env["LD_LIBRARY_PATH"] = ":".join(p for p in [*libdirs, env.get("LD_LIBRARY_PATH", "")] if p)
        env["LINEARSR_EDGE_SITE_PACKAGES"] = os.pathsep.join(site_packages())  # what model.py imports
        return env

    # -- model control ------------------------------------------------------------------------
    def _admin(self, path: str, method: str = "POST", body: bytes = b"{}", timeout: float = 300.0) -> int:
        request = urllib.request.Request(
            f"http://{self.http_url}{path}", data=body if method == "POST" else None, method=method,
            headers={ADMIN_HEADER: self.admin_key, "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise ServeError(f"{method} {path} answered {exc.code}: {detail}") from None

    def load_model(self) -> None:
        """Load the model again (Triton's model-control load): the newest version of the repository goes live
        (a bundle swap: write version N+1 with ``linearsr-triton --version``), and instances are made anew.
        Triton keeps serving with the loaded instances until the new ones are ready, then retires them
        after their in-flight requests: no request is dropped. Returns once the model is loaded."""
        with self._loading:
            self._admin(f"/v2/repository/models/{MODEL}/load")

    def model_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/models/{MODEL}/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stubs(self) -> list[int]:
        """Process ids of this server's live Python stubs (one per model instance and loaded version)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0]
                except OSError:
                    continue
                if self._stub_path and argv0.decode("utf-8", "replace") == self._stub_path:
                    found.append(int(entry.name))
        return found

    def _watch(self, interval: float = 0.5) -> None:
        """The supervisor: when fewer stubs live than instances and the model is still loaded, an instance died;
        load the model again (the others go on serving meanwhile)."""
        while not self._stopping.wait(interval):
            if self.process is None or self.process.poll() is not None:
                return
            if self._loading.locked() or len(self.stubs()) >= self.instances or not self.model_ready():
                continue
            if self._stopping.is_set():
                return
            self._say(f"a model instance died ({len(self.stubs())} of {self.instances} live); loading it again")
            try:
                self.load_model()
                self.restarts.append(time.time())
                self._say(f"model loaded again: {len(self.stubs())} instance(s) live")
            except (ServeError, OSError) as exc:
                self._say(f"loading the model again failed: {exc}")

    def _say(self, message: str) -> None:
        if self.notify is not None:
            self.notify(message)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{self.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServeError(
                    f"tritonserver exited with code {self.process.returncode} while starting"
                    + (f"; see {self.log}" if self.log else "; pass a log file to see why")
                )
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise ServeError(f"tritonserver was not ready within {timeout:.0f} s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the server's process group; SIGKILL after ``timeout``; remove the temporary folder."""
        self._stopping.set()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=timeout)
            self._supervisor = None
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
        if self._out is not None:
            self._out.close()
            self._out = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self) -> TritonServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
