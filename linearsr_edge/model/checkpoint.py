"""Checkpoint loading: safetensors (or weights-only pickles), SANA / diffusers key maps, strict checks.

Three namings are understood and detected automatically:

* ``linearsr`` -- this package's own module names (what `Denoiser.state_dict` gives);
* ``diffusers`` -- ``SanaTransformer2DModel`` (``transformer_blocks.N.attn1.to_q`` ...);
* ``sana`` -- NVlabs SANA (``x_embedder``, ``blocks.N.attn.qkv`` (fused), ``cross_attn.kv_linear`` ...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from linearsr_edge.config import ModelConfig
from linearsr_edge.errors import CheckpointError
from linearsr_edge.model.denoiser import Denoiser
from linearsr_edge.model.experts import SNRExperts

StateDict = dict[str, torch.Tensor]

# Module-path renames, internal -> external. "{}" is a block index.
_DIFFUSERS = {
    "patch_embed": "patch_embed.proj",
    "time_embed.linear_1": "time_embed.emb.timestep_embedder.linear_1",
    "time_embed.linear_2": "time_embed.emb.timestep_embedder.linear_2",
    "time_mod": "time_embed.linear",
    "cond_proj.linear_1": "caption_projection.linear_1",
    "cond_proj.linear_2": "caption_projection.linear_2",
    "cond_norm": "caption_norm",
    "final_mod_table": "scale_shift_table",
    "final_proj": "proj_out",
    "blocks.{}.mod_table": "transformer_blocks.{}.scale_shift_table",
    "blocks.{}.self_attn.to_q": "transformer_blocks.{}.attn1.to_q",
    "blocks.{}.self_attn.to_k": "transformer_blocks.{}.attn1.to_k",
    "blocks.{}.self_attn.to_v": "transformer_blocks.{}.attn1.to_v",
    "blocks.{}.self_attn.to_out": "transformer_blocks.{}.attn1.to_out.0",
    "blocks.{}.cross_attn.to_q": "transformer_blocks.{}.attn2.to_q",
    "blocks.{}.cross_attn.to_k": "transformer_blocks.{}.attn2.to_k",
    "blocks.{}.cross_attn.to_v": "transformer_blocks.{}.attn2.to_v",
    "blocks.{}.cross_attn.to_out": "transformer_blocks.{}.attn2.to_out.0",
    "blocks.{}.ffn.expand": "transformer_blocks.{}.ff.conv_inverted",
    "blocks.{}.ffn.depthwise": "transformer_blocks.{}.ff.conv_depth",
    "blocks.{}.ffn.project": "transformer_blocks.{}.ff.conv_point",
}

_SANA = {
    "patch_embed": "x_embedder.proj",
    "time_embed.linear_1": "t_embedder.mlp.0",
    "time_embed.linear_2": "t_embedder.mlp.2",
    "time_mod": "t_block.1",
    "cond_proj.linear_1": "y_embedder.y_proj.fc1",
    "cond_proj.linear_2": "y_embedder.y_proj.fc2",
    "cond_norm": "attention_y_norm",
    "final_mod_table": "final_layer.scale_shift_table",
    "final_proj": "final_layer.linear",
    "blocks.{}.mod_table": "blocks.{}.scale_shift_table",
    "blocks.{}.self_attn.to_out": "blocks.{}.attn.proj",
    "blocks.{}.cross_attn.to_q": "blocks.{}.cross_attn.q_linear",
    "blocks.{}.cross_attn.to_out": "blocks.{}.cross_attn.proj",
    "blocks.{}.ffn.expand": "blocks.{}.mlp.inverted_conv.conv",
    "blocks.{}.ffn.depthwise": "blocks.{}.mlp.depth_conv.conv",
    "blocks.{}.ffn.project": "blocks.{}.mlp.point_conv.conv",
}
# Fused SANA tensors: external module -> internal modules, concatenated along dim 0 in this order.
_SANA_FUSED = {
    "blocks.{}.attn.qkv": ("blocks.{}.self_attn.to_q", "blocks.{}.self_attn.to_k", "blocks.{}.self_attn.to_v"),
    "blocks.{}.cross_attn.kv_linear": ("blocks.{}.cross_attn.to_k", "blocks.{}.cross_attn.to_v"),
}
# SANA keys with no counterpart at inference: the fixed positional table (LinearSR uses none)
# and the null caption used for classifier-free guidance training.
_SANA_IGNORED = re.compile(r"^(pos_embed|y_embedder\.y_embedding)$")

NAMINGS = ("linearsr", "diffusers", "sana")


def _pattern(path: str) -> re.Pattern[str]:
    """Regex for a module path ("{}" = block index) followed by at most one leaf (weight, bias)."""
    body = re.escape(path).replace(r"\{\}", r"(?P<i>\d+)")
    return re.compile(rf"^{body}(?P<leaf>(\.[^.]+)?)$")


def _compile(table: Mapping[str, str]) -> list[tuple[re.Pattern[str], str]]:
    return [(_pattern(src), dst) for src, dst in table.items()]


def _rename(key: str, rules: list[tuple[re.Pattern[str], str]]) -> str | None:
    for pattern, dst in rules:
        m = pattern.match(key)
        if m:
            return dst.replace("{}", m.groupdict().get("i") or "") + m.group("leaf")
    return None


def _tables(naming: str) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    if naming == "diffusers":
        return _DIFFUSERS, {}
    if naming == "sana":
        return _SANA, _SANA_FUSED
    return {}, {}


def detect_naming(state_dict: Mapping[str, object]) -> str:
    """Which naming a state dict uses: ``linearsr``, ``diffusers`` or ``sana``."""
    keys = list(state_dict)
    if any(k.startswith(("transformer_blocks.", "caption_projection.", "time_embed.emb.")) for k in keys):
        return "diffusers"
    if any(k.startswith(("x_embedder.", "t_block.", "t_embedder.", "y_embedder.", "final_layer.")) for k in keys):
        return "sana"
    if any(k.startswith(("patch_embed.weight", "blocks.", "time_mod.", "cond_proj.")) for k in keys):
        return "linearsr"
    sample = ", ".join(keys[:5]) or "<empty>"
    raise CheckpointError(f"cannot tell the key naming of this checkpoint (first keys: {sample})")


def to_internal(state_dict: Mapping[str, torch.Tensor], naming: str | None = None) -> StateDict:
    """Rename an external state dict to this package's names (fused SANA tensors are split)."""
    naming = naming or detect_naming(state_dict)
    if naming not in NAMINGS:
        raise CheckpointError(f"unknown naming {naming!r}; expected one of {NAMINGS}")
    if naming == "linearsr":
        return dict(state_dict)
    table, fused = _tables(naming)
    rules = _compile({v: k for k, v in table.items()})
    fused_rules = [(_pattern(ext), parts) for ext, parts in fused.items()]
    out: StateDict = {}
    for key, tensor in state_dict.items():
        if naming == "sana" and _SANA_IGNORED.match(key):
            continue
        for pattern, parts in fused_rules:
            m = pattern.match(key)
            if m:
                block, leaf = m.group("i"), m.group("leaf")
                if tensor.shape[0] % len(parts):
                    raise CheckpointError(f"{key}: fused dim {tensor.shape[0]} does not split into {len(parts)}")
                for part, chunk in zip(parts, tensor.chunk(len(parts), dim=0), strict=True):
                    out[part.replace("{}", block) + leaf] = chunk.contiguous()
                break
        else:
            new = _rename(key, rules)
            out[new if new is not None else key] = tensor  # unknown keys survive to be reported
    return out


def from_internal(state_dict: Mapping[str, torch.Tensor], naming: str) -> StateDict:
    """Rename this package's state dict to ``diffusers`` or ``sana`` naming (SANA tensors fused)."""
    if naming not in NAMINGS:
        raise CheckpointError(f"unknown naming {naming!r}; expected one of {NAMINGS}")
    if naming == "linearsr":
        return dict(state_dict)
    table, fused = _tables(naming)
    rules = _compile(table)
    out: StateDict = {}
    pending: dict[str, dict[str, torch.Tensor]] = {}
    part_of: dict[str, tuple[str, int]] = {}
    for ext, parts in fused.items():
        for i, part in enumerate(parts):
            part_of[part] = (ext, i)
    part_rules = [(_pattern(p), p) for p in part_of]
    for key, tensor in state_dict.items():
        for pattern, part in part_rules:
            m = pattern.match(key)
            if m:
                ext, i = part_of[part]
                target = ext.replace("{}", m.group("i")) + m.group("leaf")
                pending.setdefault(target, {})[i] = tensor
                break
        else:
            new = _rename(key, rules)
            out[new if new is not None else key] = tensor
    for target, chunks in pending.items():
        out[target] = torch.cat([chunks[i] for i in sorted(chunks)], dim=0)
    return out


def read_state_dict(path: str | Path) -> StateDict:
    """Read tensors from ``.safetensors`` or (weights only) ``.pt`` / ``.pth`` / ``.bin``.

    A diffusers model folder is accepted too (``diffusion_pytorch_model.safetensors``).
    """
    path = Path(path)
    if path.is_dir():
        candidates = [path / "diffusion_pytorch_model.safetensors", path / "model.safetensors"]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise CheckpointError(f"{path} is a folder without diffusion_pytorch_model.safetensors")
        path = found
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own SafetensorError / OSError variants
            raise CheckpointError(f"{path}: not a valid safetensors file (truncated or corrupt?): {exc}") from None
    if suffix in (".pt", ".pth", ".bin", ".ckpt"):
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling errors come in many types
            raise CheckpointError(
                f"{path}: cannot be read as a weights-only torch checkpoint: {str(exc).splitlines()[0]}"
            ) from None
        return _unwrap(obj, path)
    raise CheckpointError(
        f"{path}: unsupported checkpoint type {suffix or '(no suffix)'!r}; use .safetensors (or .pt/.pth/.bin)"
    )


def _unwrap(obj: object, path: Path) -> StateDict:
    """SANA training checkpoints nest the weights under 'state_dict' (or 'ema'/'model')."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "ema"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a mapping of tensor names to tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def check_and_load(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Strictly load ``state_dict`` into ``module``; one `CheckpointError` lists every problem."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched)):
        if items:
            shown = ", ".join(items[:12]) + (f", ... ({len(items) - 12} more)" if len(items) > 12 else "")
            problems.append(f"{len(items)} {label}: {shown}")
    if problems:
        raise CheckpointError(f"{source} does not fit the model config:\n  " + "\n  ".join(problems))
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state_dict.items()}, strict=True)


def load_denoiser(
    source: str | Path | Mapping[str, torch.Tensor], cfg: ModelConfig, naming: str | None = None
) -> Denoiser:
    """One expert from a file or a state dict in any supported naming. Strict."""
    label = str(source) if isinstance(source, (str, Path)) else "state dict"
    raw = read_state_dict(source) if isinstance(source, (str, Path)) else dict(source)
    model = Denoiser(cfg)
    check_and_load(model, to_internal(raw, naming), label)
    return model.eval()


def load_experts(sources: str | Path | Sequence[str | Path], cfg: ModelConfig, naming: str | None = None) -> SNRExperts:
    """All experts: one file per expert (in band order), or one file holding ``experts.K.*`` keys."""
    experts = SNRExperts(cfg)
    if isinstance(sources, (str, Path)):
        raw = read_state_dict(sources)
        if not any(k.startswith("experts.") for k in raw):
            if cfg.num_experts != 1:
                raise CheckpointError(
                    f"{sources} holds one denoiser but the config has {cfg.num_experts} experts; "
                    "pass one file per expert or a file with experts.K.* keys"
                )
            check_and_load(experts.experts[0], to_internal(raw, naming), str(sources))
            return experts.eval()
        per: dict[int, StateDict] = {}
        for key, tensor in raw.items():
            m = re.match(r"^experts\.(\d+)\.(.+)$", key)
            if not m:
                raise CheckpointError(f"{sources}: key {key!r} is outside experts.K.*")
            per.setdefault(int(m.group(1)), {})[m.group(2)] = tensor
        if sorted(per) != list(range(cfg.num_experts)):
            raise CheckpointError(f"{sources}: holds experts {sorted(per)}, config needs 0..{cfg.num_experts - 1}")
        for k, sd in per.items():
            check_and_load(experts.experts[k], to_internal(sd, naming), f"{sources} (expert {k})")
        return experts.eval()
    paths = list(sources)
    if len(paths) != cfg.num_experts:
        raise CheckpointError(f"got {len(paths)} expert checkpoints, config has {cfg.num_experts} bands")
    for k, p in enumerate(paths):
        check_and_load(experts.experts[k], to_internal(read_state_dict(p), naming), f"{p} (expert {k})")
    return experts.eval()
