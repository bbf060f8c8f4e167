"""A tiny random BLIP captioner (image to text), written to a directory in well under a second."""

from __future__ import annotations

from pathlib import Path

from llmrouter.testing._build import built_with, mark_built, start_build

_CAPTION_WORDS = """
a an the of in on with and is this that what picture photo image red green blue
white black small large cat dog fox bird tree house car sky snow water table apple
person sitting standing next to near
"""
_WORDS = _CAPTION_WORDS.split()
_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_captioner(path: str | Path, *, seed: int = 0, image_size: int = 32) -> Path:
    """Write a tiny random BLIP captioning model (with its processor) to ``path``.

    About 100 k parameters, built offline in well under a second: a 2-layer ViT
    on ``image_size`` pixels, a 2-layer BERT-style text decoder and a
    hand-written WordPiece vocabulary. Captions are random words; the loading,
    processing and generation path is the real one. Idempotent.

    Examples:
        >>> import tempfile
        >>> from llmrouter.testing import build_tiny_captioner
        >>> path = build_tiny_captioner(tempfile.mkdtemp())
        >>> (path / "config.json").is_file()
        True
    """
    target = Path(path)
    settings = {"kind": "captioner", "seed": seed, "image_size": image_size, "format": 1}
    if built_with(target, settings):
        return target

    import torch
    import transformers
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipProcessor

    start_build(target)
    vocab = target / "vocab.txt"
    vocab.write_text("\n".join(_SPECIALS + _WORDS) + "\n")
    # from_pretrained reads vocab.txt in transformers 4 and 5 alike (their
    # constructors differ: vocab_file= versus a vocab dict).
    tokenizer = BertTokenizer.from_pretrained(target, model_max_length=32)
    # transformers 5 names the torchvision-free image processor ...Pil.
    image_processor_class = getattr(transformers, "BlipImageProcessorPil", None)
    image_processor_class = image_processor_class or transformers.BlipImageProcessor
    image_processor = image_processor_class(size={"height": image_size, "width": image_size})
    ids = tokenizer.convert_tokens_to_ids(_SPECIALS)
    pad, unk, cls, sep, mask = ids
    config = BlipConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": 8,
        },
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 64,
            "encoder_hidden_size": 32,
            "bos_token_id": cls,
            "sep_token_id": sep,
            "pad_token_id": pad,
        },
        projection_dim=32,
        image_text_hidden_size=32,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BlipForConditionalGeneration(config)
        # BLIP generates with its text decoder's own settings (a saved generation
        # config is ignored): make the random head pick words, never specials, so
        # captions are words and run to ``max_new_tokens``.
        bias = model.text_decoder.cls.predictions.bias
        bias.data[[pad, unk, cls, sep, mask]] = -1e4
    model.generation_config.max_new_tokens = 8  # read by the pipeline, passed to BLIP
    model.save_pretrained(target)
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)  # type: ignore[no-untyped-call]
    processor.save_pretrained(target)
    mark_built(target, settings)
    return target
