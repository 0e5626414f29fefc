"""The ``executorch`` backend for ``executorch`` bundles: one ``.pte`` program per component, run by ExecuTorch's
Python runtime (``executorch.runtime``) with XNNPACK, on x86 and Arm CPUs alike.

* **Rows.** The programs take one row per call (`plan.ROWS_PER_CALL`); the runtime splits batches from the size
  policy, and a session given more rows runs them one by one.
* **Threads.** ExecuTorch has one thread pool per process (XNNPACK's); ``--threads`` resizes it.
* **PyTorch.** ExecuTorch's Python runtime links libtorch: this backend needs ``torch`` installed, unlike the
  ONNX Runtime and OpenVINO ones. An Android or embedded Linux app reads the same ``.pte`` files, the
  manifest and the golden set with ExecuTorch's Java/Kotlin (``org.pytorch.executorch.Module``) or C++
  (``executorch::extension::Module``) runtime, without Python or PyTorch.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from typing import Any

import numpy as np

from linearsr_edge.backends.executorch.options import EtOptions
from linearsr_edge.backends.executorch.plan import ROWS_PER_CALL
from linearsr_edge.errors import BundleError
from linearsr_edge.pipeline.session import Backend, Feeds, Session
from linearsr_edge.pipeline.sizes import join_rows, split_rows
from linearsr_edge.specs import ComponentSpec

_pool_lock = threading.Lock()


@contextlib.contextmanager
def quiet_native():
    """ExecuTorch's CPU probe logs its file reads to the process's stderr once, from C++, and importing it warns
    through torch's and torchao's loggers about optional kernels and a deprecated registration: hide them."""
    with contextlib.ExitStack() as stack:
        for name in ("torch.utils._pytree", "torchao"):
            logger = logging.getLogger(name)
            stack.callback(logger.setLevel, logger.level)
            logger.setLevel(logging.ERROR)
        try:
            saved = os.dup(2)
        except OSError:  # no stderr to hide
            saved = None
        if saved is not None:
            null = stack.enter_context(open(os.devnull, "wb"))
            stack.callback(os.close, saved)
            stack.callback(os.dup2, saved, 2)  # runs first: stderr back before anything is closed
            os.dup2(null.fileno(), 2)
        yield


@functools.lru_cache(maxsize=1)
def runtime():
    """ExecuTorch's process-wide runtime, its thread pool created (the pool's CPU probe logs five lines of file
    reads to stderr from C++, once: hidden)."""
    with quiet_native():
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime

        portable_lib._threadpool_get_thread_count()
        return Runtime.get()


def set_threads(threads: int) -> int:
    """Resize ExecuTorch's process-wide thread pool; returns the size in force."""
    runtime()  # first: the import's and the pool's noise hidden
    from executorch.extension.pybindings import portable_lib

    with _pool_lock:
        if portable_lib._threadpool_get_thread_count() != threads:
            portable_lib._unsafe_reset_threadpool(threads)
        return portable_lib._threadpool_get_thread_count()


def thread_count() -> int:
    runtime()
    from executorch.extension.pybindings import portable_lib

    return portable_lib._threadpool_get_thread_count()


def as_tensor(array: np.ndarray):
    """A torch tensor over ``array`` (no copy unless it is read-only or not contiguous)."""
    import torch

    array = np.ascontiguousarray(array)
    return torch.from_numpy(array if array.flags.writeable else array.copy())


class EtSession(Session):
    backend = "executorch"

    def __init__(self, path, spec: ComponentSpec) -> None:
        super().__init__(spec)
        if not path.is_file():
            raise BundleError(f"ExecuTorch program {path} is missing")
        try:
            self._program = runtime().load_program(path)
            self._method = self._program.load_method("forward")
        except Exception as exc:  # the runtime raises RuntimeError / ValueError with its error code
            raise BundleError(f"ExecuTorch cannot load {path.name}: {exc}") from None

    def _run(self, feeds: Feeds) -> Feeds:
        return join_rows([self._row(row) for row in split_rows(feeds, ROWS_PER_CALL)])

    def _row(self, feeds: Feeds) -> Feeds:
        outputs = self._method.execute([as_tensor(feeds[n]) for n in self.spec.input_names])
        # the outputs live in the program's planned memory, which the next call overwrites: copy them out
        return {n: np.array(o.numpy(), dtype=np.float32) for n, o in zip(self.spec.output_names, outputs, strict=True)}

    def settings(self) -> dict[str, Any]:
        return {"device": "CPU", "delegate": "xnnpack", "threads": thread_count()}

    def close(self) -> None:
        self._method = self._program = None


class EtBackend(Backend):
    name = "executorch"

    def __init__(self, bundle, options: EtOptions) -> None:
        super().__init__(bundle, options)
        if options.threads:
            set_threads(options.threads)

    def open(self, component: str) -> Session:
        return EtSession(self.bundle.file(component), self.specs[component])

    def component_bytes(self) -> dict[str, int]:
        """A program's file plus the activation memory its plan reserves when it loads (the manifest's record)."""
        section = self.bundle.manifest.family("executorch")
        records = section.components if section is not None else {}
        planned = {n: r.planned_bytes for n, r in records.items()}
        return {n: size + planned.get(n, 0) for n, size in super().component_bytes().items()}
