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
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from linearsr_edge.errors import BackendUnavailableError, ConfigError, LinearSRError
from linearsr_edge.pipeline.imaging import DEFAULT_MAX_OUTPUT_PIXELS

MODEL = "linearsr"
KINDS = ("KIND_CPU", "KIND_GPU")


ADMIN_HEADER = "linearsr-admin-key"  # the HTTP header that opens the restricted API groups
GRPC_ADMIN_HEADER = f"triton-grpc-protocol-{ADMIN_HEADER}"  # the same over gRPC (Triton prefixes it)
RESTRICTED_HTTP = "model-repository,shared-memory,logging,trace"  # statistics stay open: perf_analyzer reads them
RESTRICTED_GRPC = "model-repository,shared-memory,logging,trace"


class ServeError(LinearSRError):
    """The server could not start or stop as asked."""


def config_pbtxt(max_batch: int, max_queue_delay_us: int, instances: int, kind: str) -> str:
    """Triton's model configuration: inputs, output, dynamic batching, instance group.

    ``tags`` is UTF-8 text, comma-separated, as UINT8 (not BYTES: the Python stub of the nvidia-pytriton
    build crashed deserializing any BYTES input here, taking the model down for every client)."""
    if kind not in KINDS:
        raise ConfigError(f"instance kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if instances < 1 or max_batch < 1 or max_queue_delay_us < 0:
        raise ConfigError("instances and max batch must be >= 1, the queue delay >= 0")
    return f"""name: "{MODEL}"
backend: "python"
max_batch_size: {max_batch}
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
}}
instance_group [ {{ count: {instances} kind: {kind} }} ]
"""


def write_repository(
    bundle: str | Path,
    repo: str | Path,
    backend: str = "auto",
    options: Any = None,
    max_queue_delay_us: int = 2000,
    instances: int = 1,
    kind: str = "KIND_CPU",
    copy_bundle: bool = False,
    max_batch: int = 8,
    max_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
) -> Path:
    """Write the model repository; returns the model folder. ``copy_bundle``: put the bundle inside the
    repository and name no path of this machine, so that the repository can move (into a container, to
    another host) and still serve; else it references the bundle and this interpreter's site-packages by
    absolute path. ``max_pixels``: requests whose output would exceed it are refused (400)."""
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ConfigError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    from linearsr_edge.bundle import Bundle
    from linearsr_edge.fileio import atomic_write_text

    bundle = Bundle.load(bundle)  # verified before it is served
    repo = Path(repo)
    model = repo / MODEL
    version = model / "1"
    version.mkdir(parents=True, exist_ok=True)
    if copy_bundle:
        target = model / "bundle"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(bundle.path, target)
        bundle_ref = "bundle"
    else:
        bundle_ref = str(bundle.path.resolve())
    from linearsr_edge.options import changed_fields

    option_fields = {} if options is None else {k: _jsonable(v) for k, v in changed_fields(options).items()}
    settings = {"bundle": bundle_ref, "backend": backend, "options": option_fields, "max_pixels": max_pixels}
    if not copy_bundle:  # tied to this machine anyway (the bundle's absolute path): its packages too
        settings["site_packages"] = site_packages()
    atomic_write_text(model / "config.pbtxt", config_pbtxt(max_batch, max_queue_delay_us, instances, kind))
    atomic_write_text(version / "linearsr.json", json.dumps(settings, indent=2) + "\n")
    shutil.copyfile(Path(__file__).with_name("triton_model.py"), version / "model.py")
    return model


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
        self.process: subprocess.Popen | None = None
        self.tmp: Path | None = None
        self._out = None  # the log file, when one was given

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def command(self, install: TritonInstall, repo: Path, backends: Path) -> list[str]:
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
            "--exit-on-error=true",
            "--exit-timeout-secs=5",  # open client connections must not hold SIGTERM past the 10 s limit
            "--log-verbose=0",
        ]

    def start(self, timeout: float = 120.0) -> TritonServer:
        install = TritonInstall.find()
        self.tmp = Path(tempfile.mkdtemp(prefix="linearsr-serve-"))
        try:
            repo = self.repo
            if repo is None:
                repo = self.tmp / "models"
                write_repository(
                    self.bundle, repo, self.backend, self.options, self.max_queue_delay_us, self.instances,
                    max_pixels=self.max_pixels,
                )  # fmt: skip
            backends = self.tmp / "backends" / "python"
            backends.mkdir(parents=True)
            for f in (*install.backend_files, install.stub):
                shutil.copy2(f, backends / f.name)
            env = dict(os.environ)
            libdirs = [sysconfig.get_config_var("LIBDIR") or "", str(install.libs or "")]
            env["LD_LIBRARY_PATH"] = ":".join(p for p in [*libdirs, env.get("LD_LIBRARY_PATH", "")] if p)
            env["LINEARSR_EDGE_SITE_PACKAGES"] = os.pathsep.join(site_packages())  # what model.py imports
            self._out = open(self.log, "ab") if self.log else None  # noqa: SIM115 (closed in stop)
            self.process = subprocess.Popen(
                self.command(install, repo, backends.parent),
                env=env,
                stdout=self._out or subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends the stubs too
            )
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

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
