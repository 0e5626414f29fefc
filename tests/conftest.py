"""Shared by every lane, so it imports no PyTorch (the unit lane runs without it): fixtures that need the
PyTorch reference import it inside them."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest

from linearsr_edge.config import ModelConfig, bands_from_edges

os.environ.setdefault("OMP_NUM_THREADS", "2")  # PyTorch's threads, read when it is first imported


def pytest_configure(config) -> None:
    """Compiled models and verification passes go to a cache of this test run, never the user's."""
    config._linearsr_cache = tempfile.mkdtemp(prefix="linearsr-test-cache-")
    os.environ["LINEARSR_EDGE_CACHE"] = config._linearsr_cache


def pytest_unconfigure(config) -> None:
    shutil.rmtree(getattr(config, "_linearsr_cache", ""), ignore_errors=True)


def tiny_config(**overrides) -> ModelConfig:
    """A 2-block, width-32 model with 4 experts: builds and runs in milliseconds."""
    kwargs = dict(
        latent_channels=12,
        hidden_size=32,
        depth=2,
        num_heads=2,
        head_dim=16,
        mlp_ratio=2.0,
        cross_attn_heads=2,
        cross_attn_head_dim=16,
        cond_dim=8,
        patch_size=1,
        bands=bands_from_edges((0.5, 1.6, 3.0)),
        default_steps=4,
        start_sigma=0.5,
        parameterization="residual",
        residual_scale=4.0,
        upscale=2,
    )
    kwargs.update(overrides)
    return ModelConfig(**kwargs)


@pytest.fixture
def tiny_cfg() -> ModelConfig:
    return tiny_config()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory):
    """``get(target) -> ExportResult``: the tiny model exported once per target for the whole session
    (TINY_PROFILE; FP16/INT8 calibrated on five small photos, two held out)."""
    from tests.helpers import export_tiny

    root = tmp_path_factory.mktemp("tiny-bundles")
    cache: dict = {}

    def get(target: str):
        if target not in cache:
            cache[target] = export_tiny(root, target)
        return cache[target]

    get.root = root  # variants: export_tiny(tiny_bundles.root, target, name=..., **overrides)
    return get
