"""Write a MusicGen with musicgen-small's (or -medium's) exact shapes and random weights
(same cost as the real model, no download) to the given directory, with the tiny fixture
tokenizer.

    python scripts/bench/make_full_size.py bench-models/musicgen-small-random
    python scripts/bench/make_full_size.py bench-models/musicgen-medium-random medium
"""

import os
import shutil
import sys

import torch
from transformers import (EncodecConfig, MusicgenConfig, MusicgenDecoderConfig,
                          MusicgenForConditionalGeneration, T5Config)


# The published decoders: (layers, hidden size, heads, feed-forward size).
DECODERS = {"small": (24, 1024, 16, 4096), "medium": (48, 1536, 24, 6144)}


def main(out, size="small"):
    if os.path.exists(os.path.join(out, "model.safetensors")):
        print(f"{out} exists", file=sys.stderr)
        return
    torch.manual_seed(0)
    # t5-base, encodec_32khz and the musicgen-small (or -medium) decoder, as published.
    t5 = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12,
                  relative_attention_num_buckets=32, feed_forward_proj="relu")
    enc = EncodecConfig(sampling_rate=32000, audio_channels=1, hidden_size=128, num_filters=64,
                        num_residual_layers=1, upsampling_ratios=[8, 5, 4, 4], norm_type="weight_norm",
                        kernel_size=7, last_kernel_size=7, residual_kernel_size=3, dilation_growth_rate=2,
                        use_causal_conv=False, pad_mode="reflect", compress=2, num_lstm_layers=2,
                        trim_right_ratio=1.0, codebook_size=2048, codebook_dim=128, use_conv_shortcut=False,
                        target_bandwidths=[2.2], chunk_length_s=None, normalize=False)
    layers, hidden, heads, ffn = DECODERS[size]
    dec = MusicgenDecoderConfig(vocab_size=2048, max_position_embeddings=2048, num_hidden_layers=layers,
                                ffn_dim=ffn, num_attention_heads=heads, hidden_size=hidden, num_codebooks=4,
                                audio_channels=1, pad_token_id=2048, bos_token_id=2048, dropout=0.0,
                                activation_function="gelu")
    model = MusicgenForConditionalGeneration(MusicgenConfig(text_encoder=t5, audio_encoder=enc, decoder=dec)).eval()
    with torch.no_grad():
        for name, b in model.named_buffers():
            if name.endswith("codebook.embed"):
                b.normal_(0.0, 1.0)
    g = model.generation_config
    g.decoder_start_token_id = g.pad_token_id = g.bos_token_id = 2048
    model.save_pretrained(out)
    here = os.path.dirname(__file__)
    shutil.copy(os.path.join(here, "..", "..", "tests", "fixtures", "tiny_tokenizer.json"),
                os.path.join(out, "tokenizer.json"))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:3])
