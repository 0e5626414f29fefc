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
