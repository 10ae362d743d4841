"""Write BLIP-large, BLIP-base and CLIP ViT-B/32 with their published shapes and random
weights (same cost as the real models, no download), with the tiny fixture tokenizers.

    python scripts/bench/make_full_size_vision.py bench-models

Writes bench-models/{blip-large-random,blip-base-random,clip-vit-b32-random}, or only the
one named after the root. The caption
decoder's [SEP] bias is pushed far down so every caption runs the full token budget on
both sides: the timed work is then the same whatever the random weights say.
"""

import os
import shutil
import sys

import torch
from transformers import BlipConfig, BlipForConditionalGeneration, CLIPConfig, CLIPModel

HERE = os.path.dirname(__file__)
FIXTURES = os.path.join(HERE, "..", "..", "tests", "fixtures")

# The published text side of both BLIP captioning checkpoints (BERT-base sized decoder).
BLIP_TEXT = dict(vocab_size=30524, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, max_position_embeddings=512, bos_token_id=30522,
                 sep_token_id=102, pad_token_id=0)
BLIP = {
    "blip-large-random": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                              num_attention_heads=16, image_size=384, patch_size=16),
    "blip-base-random": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                             num_attention_heads=12, image_size=384, patch_size=16),
}


def done(out):
    if os.path.exists(os.path.join(out, "model.safetensors")):
        print(f"{out} exists", file=sys.stderr)
        return True
    return False


def blip(out, vision):
    if done(out):
        return
    torch.manual_seed(0)
    text = dict(BLIP_TEXT, encoder_hidden_size=vision["hidden_size"])
    model = BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision)).eval()
    with torch.no_grad():
        model.text_decoder.cls.predictions.bias[BLIP_TEXT["sep_token_id"]] = -1e4
    model.save_pretrained(out, safe_serialization=True)
    shutil.copy(os.path.join(FIXTURES, "blip", "wide_vision", "tokenizer.json"), out)
    print(f"wrote {out}", file=sys.stderr)


def clip(out):
    if done(out):
        return
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=512, intermediate_size=2048,
                         num_hidden_layers=12, num_attention_heads=8, max_position_embeddings=77,
                         hidden_act="quick_gelu",
                         # As the published config: eos id 2 makes transformers pool at the
                         # largest id (the end token), as the original CLIP does.
                         bos_token_id=0, eos_token_id=2, pad_token_id=1),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                           num_attention_heads=12, image_size=224, patch_size=32,
                           hidden_act="quick_gelu"),
        projection_dim=512)
    CLIPModel(cfg).eval().save_pretrained(out, safe_serialization=True)
    shutil.copy(os.path.join(FIXTURES, "clip", "tiny", "tokenizer.json"), out)
    print(f"wrote {out}", file=sys.stderr)


def main(root, only=None):
    for name, vision in BLIP.items():
        if only in (None, name):
            blip(os.path.join(root, name), vision)
    if only in (None, "clip-vit-b32-random"):
        clip(os.path.join(root, "clip-vit-b32-random"))


if __name__ == "__main__":
    main(*sys.argv[1:3])
