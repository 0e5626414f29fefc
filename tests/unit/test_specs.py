from __future__ import annotations

import numpy as np
import pytest

from linearsr_edge.errors import ConfigError, InputSpecError
from linearsr_edge.specs import ComponentSpec, DimRange, Profile, codec_specs, expert_spec, parse_resolution
from tests.conftest import tiny_config


@pytest.fixture
def spec():
    return expert_spec(tiny_config(), 1, Profile(min_hw=(16, 16), opt_hw=(32, 32), max_hw=(64, 96)), 2)


def test_profile_corners_and_dummy_inputs(spec):
    assert spec.dims["height"] == DimRange(8, 16, 32, 1) and spec.dims["width"].max == 48
    dummy = spec.dummy_inputs("opt", batch=2)
    assert dummy["latent"].shape == (2, 12, 16, 16) and dummy["cond"].shape == (2, 2, 8)
    assert dummy["sigma"].dtype == np.float32 and ((dummy["sigma"] > 0) & (dummy["sigma"] <= 1)).all()
    assert spec.check(dummy) == {"batch": 2, "height": 16, "width": 16, "cond_len": 2}
    assert spec.dynamic_axes()["latent"] == {0: "batch", 2: "height", 3: "width"}


def test_round_trip(spec):
    assert ComponentSpec.from_dict(spec.to_dict()) == spec
    enc, dec = codec_specs(tiny_config(), Profile(), 2)
    assert ComponentSpec.from_dict(dec.to_dict()) == dec
    assert enc.dims["img_height"].multiple == 2


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.pop("cond"), "missing \\['cond'\\]"),
        (lambda f: f.update(extra=np.zeros(1, np.float32)), "unexpected \\['extra'\\]"),
        (lambda f: f.update(sigma=f["sigma"].astype(np.float64)), "sigma: expected dtype float32, got float64"),
        (lambda f: f.update(latent=f["latent"][0]), "latent: expected rank 4"),
        (lambda f: f.update(latent=np.zeros((2, 11, 16, 16), np.float32)), "axis 1 must be 12"),
        (lambda f: f.update(lr_latent=np.zeros((2, 12, 8, 16), np.float32)), "height\\) is 8 but another"),
        (lambda f: f.update(latent=[1, 2]), "expected a NumPy array"),
    ],
)
def test_check_names_the_offender(spec, mutate, message):
    feeds = spec.dummy_inputs("opt", batch=2)
    mutate(feeds)
    with pytest.raises(InputSpecError, match=message):
        spec.check(feeds)


def test_outside_profile(spec):
    feeds = spec.dummy_inputs("opt", batch=2, height=40, width=40)
    with pytest.raises(InputSpecError, match="height=40 is outside the exported profile \\[8, 32\\]"):
        spec.check(feeds)
    with pytest.raises(InputSpecError, match="batch=5"):
        spec.check(spec.dummy_inputs("opt", batch=5))


def test_parse_resolution_and_ranges():
    assert parse_resolution("1024x768") == (768, 1024)
    for bad in ("1024", "axb", "4x4"):
        with pytest.raises(ConfigError):
            parse_resolution(bad)
    with pytest.raises(ConfigError, match="min <= opt <= max"):
        DimRange(4, 2, 8)
    with pytest.raises(ConfigError, match="multiples"):
        DimRange(3, 4, 8, 2)
