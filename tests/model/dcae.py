"""A tiny random diffusers AutoencoderDC (DC-AE) saved as a local diffusers folder."""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_dcae_folder(path: Path) -> Path:
    from diffusers import AutoencoderDC

    torch.manual_seed(0)
    vae = AutoencoderDC(
        in_channels=3,
        latent_channels=4,
        attention_head_dim=4,
        encoder_block_types=("ResBlock", "ResBlock", "EfficientViTBlock"),
        decoder_block_types=("ResBlock", "ResBlock", "EfficientViTBlock"),
        encoder_block_out_channels=(8, 16, 16),
        decoder_block_out_channels=(8, 16, 16),
        encoder_layers_per_block=(1, 1, 1),
        decoder_layers_per_block=(1, 1, 1),
        encoder_qkv_multiscales=((), (), (5,)),
        decoder_qkv_multiscales=((), (), (5,)),
        scaling_factor=0.41,
    ).eval()
    vae.save_pretrained(str(path))
    return path
