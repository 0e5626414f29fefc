from __future__ import annotations

import numpy as np
import pytest
import torch

from linearsr_edge.calibration import CalibrationOptions, collect, images_from_dir
from linearsr_edge.errors import CalibrationError
from linearsr_edge.model.codec import PixelUnshuffleCodec
from linearsr_edge.model.experts import SNRExperts
from linearsr_edge.reference import load_model_folder, reference_runtime
from linearsr_edge.schedule import log_snr
from tests.conftest import tiny_config
from tests.helpers import tiny_model_folder, write_photo


@pytest.fixture(scope="module")
def process(tmp_path_factory):
    return load_model_folder(tiny_model_folder(tmp_path_factory.mktemp("m"))).reference().process


def _images(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (20, 24, 3), dtype=np.uint8) for _ in range(n)]


OPTS = CalibrationOptions(samples_per_expert=6, heldout_samples_per_expert=3, crop=12, progress=False)


def test_each_expert_sees_only_its_band(process):
    calib = collect(process, _images(), OPTS)
    bands = process.cfg.bands
    for k in range(4):
        assert len(calib.samples[k]) == 6 and len(calib.heldout[k]) == 3
        for feeds in calib.samples[k] + calib.heldout[k]:
            assert bands[k].contains(float(log_snr(float(feeds["sigma"][0]))))
    assert len(calib.heldout_images) == 2
    record = calib.record()
    assert record.mode == "band" and record.samples_per_expert == {"0": 6, "1": 6, "2": 6, "3": 6}


def test_pooled_ablation_mixes_bands(process):
    calib = collect(process, _images(), CalibrationOptions(**{**OPTS.__dict__, "pooled": True}))
    owners = {process.cfg.expert_for(float(log_snr(float(f["sigma"][0])))) for f in calib.samples[0]}
    assert len(owners) > 1
    assert calib.record().mode == "pooled"


def test_hash_is_stable_and_seeded(process):
    a = collect(process, _images(), OPTS).digest()
    b = collect(process, iter(_images()), OPTS).digest()  # any iterator the caller owns
    c = collect(process, _images(), CalibrationOptions(**{**OPTS.__dict__, "seed": 1})).digest()
    assert a == b and a != c and len(a) == 64


def test_band_the_plan_never_visits_is_named():
    cfg = tiny_config(start_sigma=0.2)  # never reaches log-SNR < 0.5, i.e. expert 0's band
    torch.manual_seed(0)
    process = reference_runtime(SNRExperts(cfg), PixelUnshuffleCodec(2)).process
    with pytest.raises(CalibrationError, match=r"expert 0 \(log-SNR band \[-inf, 0.5\)\) got 0"):
        collect(process, _images(), CalibrationOptions(**{**OPTS.__dict__, "max_runs": 5}))


def test_bad_sources(tmp_path, process):
    with pytest.raises(CalibrationError, match="holds no images"):
        list(images_from_dir(tmp_path))
    with pytest.raises(CalibrationError, match="not found"):
        list(images_from_dir(tmp_path / "nope"))
    write_photo(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(CalibrationError, match="b.png is unreadable"):
        list(images_from_dir(tmp_path))
    with pytest.raises(CalibrationError, match="no calibration images"):
        collect(process, [], OPTS)
    with pytest.raises(CalibrationError, match="need more than the 2 held out"):
        collect(process, _images(2), OPTS)
    with pytest.raises(CalibrationError, match="image_1"):
        collect(process, [_images(1)[0], np.zeros((4, 4), np.uint8), *_images(2)], OPTS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"samples_per_expert": -1}, "samples_per_expert must be a non-negative integer"),
        ({"heldout_images": 1.5}, "heldout_images must be a non-negative integer"),
        ({"steps": 0}, "calibration steps must be a positive integer"),
    ],
)
def test_bad_calibration_options_are_refused(kwargs, message):
    with pytest.raises(CalibrationError, match=message):
        CalibrationOptions(**kwargs)
