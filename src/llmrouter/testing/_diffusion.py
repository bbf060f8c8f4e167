"""A tiny random Stable Diffusion pipeline (text to image), written in about a second."""

from __future__ import annotations

from pathlib import Path

from llmrouter.testing._build import built_with, mark_built, start_build, train_tokenizer


def build_tiny_text_to_image(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random Stable Diffusion pipeline to ``path`` (32x32 images).

    A two-block UNet, a two-block VAE, a two-layer CLIP text encoder and a
    byte-level BPE tokenizer, with a DDIM scheduler and no safety checker; built
    offline in about a second. Images are noise; the text encoding, denoising
    loop and VAE decoding are diffusers' real ones. Needs ``llmrouter[image]``.
    Idempotent.

    Examples:
        >>> import tempfile
        >>> from llmrouter.testing import build_tiny_text_to_image
        >>> path = build_tiny_text_to_image(tempfile.mkdtemp())
        >>> (path / "model_index.json").is_file()
        True
    """
    target = Path(path)
    settings = {"kind": "text-to-image", "seed": seed, "format": 1}
    if built_with(target, settings):
        return target

    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    try:
        from diffusers import (
            AutoencoderKL,
            DDIMScheduler,
            StableDiffusionPipeline,
            UNet2DConditionModel,
        )
    except ImportError as exc:
        raise ImportError(
            f"build_tiny_text_to_image needs diffusers ({exc}): pip install 'llmrouter[image]'"
        ) from exc

    start_build(target)
    tokenizer = train_tokenizer(256)
    tokenizer.model_max_length = 16  # the pipeline pads every prompt to this length
    tokenizer.padding_side = "right"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(  # type: ignore[no-untyped-call]
            sample_size=16,
            block_out_channels=(8, 16),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=16,
            attention_head_dim=2,
            norm_num_groups=4,
        )
        vae = AutoencoderKL(  # type: ignore[no-untyped-call]
            sample_size=32,
            block_out_channels=(8, 16),
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            latent_channels=4,
            norm_num_groups=4,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                max_position_embeddings=16,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
    scheduler = DDIMScheduler(  # type: ignore[no-untyped-call]
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(  # type: ignore[no-untyped-call]
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(target)  # type: ignore[attr-defined]
    mark_built(target, settings)
    return target
