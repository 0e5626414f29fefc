"""The public `SRRuntime`: the core runtime (`linearsr_edge.pipeline.runtime`) with verification composed around it.

``SRRuntime.load(path, verify="first")`` runs the bundle's golden set once per fingerprint (backend,
settings, CPU) and caches a pass; ``rt.verify()`` runs it now. The core runtime never imports the quality
layer: this class, one layer above both, composes them.
"""

from __future__ import annotations

from pathlib import Path

from linearsr_edge.bundle import Bundle
from linearsr_edge.checks import QualityThresholds
from linearsr_edge.pipeline import runtime as core
from linearsr_edge.pipeline.residency import Residency
from linearsr_edge.pipeline.session import BackendOptions, Build
from linearsr_edge.quality.verify import OnFail, VerifyReport, VerifyWhen, run_golden, verify_on_load


class SRRuntime(core.SRRuntime):
    """Super-resolution from an exported bundle, verified where it runs (see `linearsr_edge.pipeline.runtime`)."""

    last_verification: VerifyReport | None = None  # the report of `verify` or of ``load(verify=...)``

    @classmethod
    def load(
        cls,
        path: str | Path | Bundle,
        backend: str = "auto",
        options: BackendOptions | None = None,
        residency: Residency = "auto",
        build: Build = "never",
        memory_budget: int | None = None,
        verify: VerifyWhen | str = "never",
        on_verify_fail: OnFail | str = "raise",
    ) -> SRRuntime:
        """`core.SRRuntime.load`, then the golden set per ``verify``: ``"first"`` runs it once per new fingerprint
        (backend, settings, CPU) and caches a pass; ``"always"`` on every load. A failure raises
        `QualityGateError`, or with ``on_verify_fail="warn"`` logs a warning."""
        runtime = super().load(path, backend, options, residency, build, memory_budget)
        try:
            runtime.last_verification = verify_on_load(runtime, verify, on_verify_fail)
        except BaseException:
            runtime.close()
            raise
        return runtime

    def verify(self, thresholds: QualityThresholds | None = None) -> VerifyReport:
        """Run the bundle's golden set on this backend, device and options; returns a `VerifyReport` (rows like
        the export gates', a fingerprint, ``passed``). ``thresholds``: default the bundle's own."""
        self.last_verification = run_golden(self, thresholds)
        return self.last_verification
