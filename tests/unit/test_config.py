from __future__ import annotations

import json
import math

import pytest

from linearsr_edge.config import ExpertBand, ModelConfig, bands_from_edges, route, validate_bands
from linearsr_edge.errors import ConfigError
from tests.conftest import tiny_config


def test_json_round_trip(tmp_path):
    cfg = tiny_config()
    path = tmp_path / "cfg.json"
    cfg.to_json(path)
    assert ModelConfig.from_json(path) == cfg
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    # standard JSON: unbounded band ends are null, never Infinity
    text = path.read_text()
    assert "Infinity" not in text
    assert json.loads(text)["bands"][0] == [None, 0.5]


@pytest.mark.parametrize(
    ("bands", "message"),
    [
        ((ExpertBand(None, 0.0), ExpertBand(0.5, None)), "gap"),
        ((ExpertBand(None, 1.0), ExpertBand(0.5, None)), "overlaps"),
        ((ExpertBand(-3.0, None),), "start at -inf"),
        ((ExpertBand(None, 2.0),), "end at \\+inf"),
        ((), "at least one"),
    ],
)
def test_bands_must_tile_the_line(bands, message):
    with pytest.raises(ConfigError, match=message):
        validate_bands(bands)


def test_band_rejects_inverted_and_infinite_edges():
    with pytest.raises(ConfigError, match="below high"):
        ExpertBand(2.0, 1.0)
    with pytest.raises(ConfigError, match="finite"):
        ExpertBand(-math.inf, 1.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hidden_size": 33}, "num_heads \\* head_dim"),
        ({"depth": 0}, "depth must be a positive integer"),
        ({"parameterization": "eps"}, "parameterization"),
        ({"attn_eps": 1e-15}, "attn_eps"),
        ({"start_sigma": 0.0}, "start_sigma"),
        ({"lr_conditioning": "crossattn"}, "lr_conditioning"),
    ],
)
def test_invalid_fields_name_the_problem(overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(**overrides)


def test_unknown_keys_and_bad_json(tmp_path):
    data = tiny_config().to_dict()
    data["hiden_size"] = 3
    with pytest.raises(ConfigError, match="hiden_size"):
        ModelConfig.from_dict(data)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        ModelConfig.from_json(bad)
    with pytest.raises(ConfigError, match="not found"):
        ModelConfig.from_json(tmp_path / "missing.json")


def test_route_half_open_edges():
    bands = bands_from_edges((0.5, 1.6, 3.0))
    assert route(bands, -math.inf) == 0
    assert route(bands, 0.4999) == 0
    assert route(bands, 0.5) == 1  # an edge belongs to the upper band
    assert route(bands, 1.6) == 2
    assert route(bands, 2.9999) == 2
    assert route(bands, 3.0) == 3
    assert route(bands, math.inf) == 3
    with pytest.raises(ConfigError, match="NaN"):
        route(bands, math.nan)


def test_from_diffusers_config_checks_lr_concat():
    cfg = {
        "in_channels": 8,
        "out_channels": 4,
        "num_attention_heads": 2,
        "attention_head_dim": 16,
        "num_layers": 2,
        "num_cross_attention_heads": 2,
        "cross_attention_head_dim": 16,
        "cross_attention_dim": 32,
        "caption_channels": 24,
        "patch_size": 2,
    }
    got = ModelConfig.from_diffusers_config(cfg)
    assert (got.latent_channels, got.hidden_size, got.cond_dim, got.patch_size) == (4, 32, 24, 2)
    with pytest.raises(ConfigError, match="2 x out_channels"):
        ModelConfig.from_diffusers_config({**cfg, "in_channels": 4})
    with pytest.raises(ConfigError, match="qk_norm"):
        ModelConfig.from_diffusers_config({**cfg, "qk_norm": "rms_norm_across_heads"})
