"""Devices: detection (`detect`), and later device profiles and latency profiling. No PyTorch."""

from linearsr_edge.devices.detect import Accelerator, DeviceInfo, detect

__all__ = ["Accelerator", "DeviceInfo", "detect"]
