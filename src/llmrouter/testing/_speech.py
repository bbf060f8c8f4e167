"""A tiny random Whisper speech recognizer, written to a directory in about a second."""

from __future__ import annotations

from pathlib import Path

from llmrouter.testing._build import (
    built_with,
    mark_built,
    start_build,
    train_tokenizer,
    unprintable_ids,
)

_SPECIALS = [
    "<|startoftranscript|>",
    "<|en|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
]


def build_tiny_speech_recognizer(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random Whisper model (feature extractor + tokenizer) to ``path``.

    A one-layer encoder and decoder (``d_model=32``, 16 mel bins, 2-second
    windows) and a byte-level BPE trained on a few sentences, built offline in
    about a second. Transcripts are random text of up to 8 tokens; the feature
    extraction, ``generate`` and decoding path is Whisper's real one. Idempotent.

    Examples:
        >>> import tempfile
        >>> from llmrouter.testing import build_tiny_speech_recognizer
        >>> path = build_tiny_speech_recognizer(tempfile.mkdtemp())
        >>> from transformers import AutoProcessor
        >>> type(AutoProcessor.from_pretrained(path)).__name__
        'WhisperProcessor'
    """
    target = Path(path)
    settings = {"kind": "speech", "seed": seed, "format": 1}
    if built_with(target, settings):
        return target

    import torch
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    start_build(target)
    bpe = target / "bpe"
    bpe.mkdir(exist_ok=True)
    train_tokenizer(256).backend_tokenizer.model.save(str(bpe))  # vocab.json + merges.txt
    # from_pretrained reads vocab.json/merges.txt in transformers 4 and 5 alike.
    tokenizer = WhisperTokenizer.from_pretrained(bpe)
    tokenizer.add_special_tokens({"additional_special_tokens": _SPECIALS})
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _SPECIALS}
    end = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    features = WhisperFeatureExtractor(feature_size=16, chunk_length=2)  # type: ignore[no-untyped-call]
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=16,
        encoder_layers=1,
        decoder_layers=1,
        d_model=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=100,  # 2 s of audio: 200 frames, halved by the conv stride
        max_target_positions=64,
        decoder_start_token_id=ids["<|startoftranscript|>"],
        bos_token_id=end,
        eos_token_id=end,
        pad_token_id=end,
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WhisperForConditionalGeneration(config)
    generation = model.generation_config
    generation.decoder_start_token_id = ids["<|startoftranscript|>"]
    generation.no_timestamps_token_id = ids["<|notimestamps|>"]  # type: ignore[attr-defined]
    generation.max_new_tokens = 8
    generation.max_length = None
    generation.suppress_tokens = sorted({*ids.values(), *unprintable_ids(tokenizer)} - {end})
    model.save_pretrained(target)
    processor = WhisperProcessor(feature_extractor=features, tokenizer=tokenizer)  # type: ignore[no-untyped-call]
    processor.save_pretrained(target)
    mark_built(target, settings)
    return target
