from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from linearsr_edge.errors import CheckpointError
from linearsr_edge.model.checkpoint import (
    detect_naming,
    from_internal,
    load_denoiser,
    load_experts,
    read_state_dict,
    to_internal,
)
from linearsr_edge.model.denoiser import Denoiser
from linearsr_edge.model.experts import SNRExperts


def _state(cfg):
    torch.manual_seed(0)
    return Denoiser(cfg).state_dict()


@pytest.mark.parametrize("naming", ["linearsr", "diffusers", "sana"])
def test_maps_round_trip(tiny_cfg, naming):
    sd = _state(tiny_cfg)
    ext = from_internal(sd, naming)
    assert detect_naming(ext) == naming
    back = to_internal(ext)
    assert set(back) == set(sd)
    assert all(torch.equal(back[k], sd[k]) for k in sd)


def test_sana_ignored_keys_are_dropped(tiny_cfg):
    """SANA's positional table and caption embedding are not LinearSR weights: a strict load drops them and loads
    every real weight; a key outside that list is still refused."""
    state = _state(tiny_cfg)
    ext = from_internal(state, "sana")
    ext["pos_embed"] = torch.zeros(1, 4, 32)
    ext["y_embedder.y_embedding"] = torch.zeros(300, 8)
    loaded = load_denoiser(ext, tiny_cfg).state_dict()
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    ext["y_embedder.not_a_sana_key"] = torch.zeros(2)
    with pytest.raises(CheckpointError, match="1 unexpected keys: y_embedder.not_a_sana_key"):
        load_denoiser(ext, tiny_cfg)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".pth"])
def test_files_load(tmp_path, tiny_cfg, suffix):
    sd = from_internal(_state(tiny_cfg), "diffusers")
    path = tmp_path / f"expert{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save({"state_dict": sd}, path)
    model = load_denoiser(path, tiny_cfg)
    assert torch.equal(model.patch_embed.weight, _state(tiny_cfg)["patch_embed.weight"])


def test_missing_extra_and_wrong_shape_are_reported_together(tiny_cfg):
    sd = from_internal(_state(tiny_cfg), "diffusers")
    del sd["proj_out.weight"]
    sd["transformer_blocks.0.attn1.extra.weight"] = torch.zeros(2)
    sd["caption_norm.weight"] = torch.zeros(31)
    with pytest.raises(CheckpointError) as info:
        load_denoiser(sd, tiny_cfg)
    msg = str(info.value)
    assert "1 missing keys: final_proj.weight" in msg
    assert "1 unexpected keys: transformer_blocks.0.attn1.extra.weight" in msg
    assert "cond_norm.weight: checkpoint (31,) vs model (32,)" in msg


def test_wrong_file_type(tmp_path, tiny_cfg):
    path = tmp_path / "weights.onnx"
    path.write_bytes(b"abc")
    with pytest.raises(CheckpointError, match=r"unsupported checkpoint type '\.onnx'"):
        load_denoiser(path, tiny_cfg)
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "nope.safetensors")


def test_truncated_safetensors(tmp_path, tiny_cfg):
    path = tmp_path / "expert.safetensors"
    save_file({k: v.contiguous() for k, v in _state(tiny_cfg).items()}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_denoiser(path, tiny_cfg)


def test_pickle_with_code_is_refused(tmp_path, tiny_cfg):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": _state(tiny_cfg), "fn": print}, path)  # not weights-only loadable
    with pytest.raises(CheckpointError, match="weights-only"):
        load_denoiser(path, tiny_cfg)
    path2 = tmp_path / "text.pth"
    path2.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="weights-only"):
        read_state_dict(path2)


def test_undetectable_naming():
    with pytest.raises(CheckpointError, match="cannot tell the key naming"):
        detect_naming({"foo.weight": torch.zeros(1)})


def test_experts_from_one_file_and_from_several(tmp_path, tiny_cfg):
    torch.manual_seed(1)
    experts = SNRExperts(tiny_cfg)
    combined = tmp_path / "experts.safetensors"
    save_file({k: v.contiguous() for k, v in experts.state_dict().items()}, str(combined))
    loaded = load_experts(combined, tiny_cfg)
    assert torch.equal(loaded[3].final_proj.weight, experts[3].final_proj.weight)
    paths = []
    for k in range(4):
        p = tmp_path / f"e{k}.safetensors"
        save_file({n: t.contiguous() for n, t in from_internal(experts[k].state_dict(), "sana").items()}, str(p))
        paths.append(p)
    loaded = load_experts(paths, tiny_cfg)
    assert torch.equal(loaded[2].patch_embed.weight, experts[2].patch_embed.weight)
    with pytest.raises(CheckpointError, match="got 3 expert checkpoints"):
        load_experts(paths[:3], tiny_cfg)
    with pytest.raises(CheckpointError, match="holds one denoiser"):
        load_experts(paths[0], tiny_cfg)
