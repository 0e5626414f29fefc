"""The project's typed errors. Every error a user can cause derives from `LinearSRError`."""

from __future__ import annotations


class LinearSRError(Exception):
    """Base class of every error linearsr-edge raises on bad input."""


class ConfigError(LinearSRError, ValueError):
    """A model or option configuration is invalid."""


class CheckpointError(LinearSRError, ValueError):
    """A checkpoint cannot be loaded: wrong file, keys or shapes."""


class ImageError(LinearSRError, ValueError):
    """An input image cannot be read or is unusable."""


class BundleError(LinearSRError, ValueError):
    """An artifact bundle is missing, tampered with or incompatible."""


class BackendUnavailableError(LinearSRError, ImportError):
    """A backend's package is not installed."""


class InputSpecError(LinearSRError, ValueError):
    """Arrays given to a session do not match the component's I/O spec."""


class QualityGateError(LinearSRError):
    """An export or calibration missed its quality thresholds."""


class CalibrationError(LinearSRError, ValueError):
    """Calibration data is missing, unreadable or too thin for a band."""


class ExportError(LinearSRError):
    """An export produced an unusable or wrong artifact."""


class BackendRunError(LinearSRError, RuntimeError):
    """A backend failed while running a component: names the component, the backend and the input shapes;
    the backend's own exception is the cause (``__cause__``)."""

    def __init__(self, component: str, backend: str, shapes: str, cause: BaseException) -> None:
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        super().__init__(f"{backend} failed to run {component} on {shapes}: {type(cause).__name__}: {first}")
        self.component, self.backend, self.shapes = component, backend, shapes
