"""Tiny random-weight BLIP captioning models made with transformers, and what they do.

For each config writes tests/fixtures/blip/NAME/: config.json, model.safetensors,
tokenizer.json (a small BERT-style WordPiece), reference.safetensors (the pixel values
fed in, the vision states, the first step's logits) and reference.json (the greedy
tokens of `generate(pixel_values, do_sample=False, max_new_tokens=N)`).
The Rust tests feed the same pixel tensor and must give the same tokens.

Needs: torch, transformers, safetensors, tokenizers. Run from the repo root.
"""

import json
import os

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import BlipConfig, BlipForConditionalGeneration

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "blip")
WORDS = (
    "a an the of in on with and at dog cat man woman child beach sunset mountain city "
    "street night sky sea tree park car house table food flower snow rain light people "
    "sitting standing running red blue green yellow white black small large old young "
    "photo picture view close up ##s ##ing ##ed"
).split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_tokenizer(path):
    vocab = SPECIAL + WORDS + ["[DEC]"]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(SPECIAL + ["[DEC]"])
    tok.save(path)
    return vocab


CONFIGS = {
    # BLIP-large-like: the vision width differs from the text width.
    "wide_vision": dict(vision=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                    num_attention_heads=4, image_size=32, patch_size=8),
                        text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, encoder_hidden_size=48)),
    # BLIP-base-like: equal widths, more layers, different head counts.
    "same_width": dict(vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                   num_attention_heads=2, image_size=48, patch_size=16),
                       text=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                                 num_attention_heads=8, encoder_hidden_size=32)),
}
MAX_NEW = 12

for name, spec in CONFIGS.items():
    torch.manual_seed(sum(map(ord, name)))
    out = os.path.join(ROOT, name)
    os.makedirs(out, exist_ok=True)
    vocab = make_tokenizer(os.path.join(out, "tokenizer.json"))
    text = dict(spec["text"], vocab_size=len(vocab), max_position_embeddings=64,
                bos_token_id=len(vocab) - 1, sep_token_id=3, pad_token_id=0, eos_token_id=2)
    cfg = BlipConfig(text_config=text, vision_config=spec["vision"], projection_dim=16,
                     image_text_hidden_size=16)
    model = BlipForConditionalGeneration(cfg).eval()
    # Random init makes [SEP] as likely as anything; keep it from ending captions at once.
    with torch.no_grad():
        model.text_decoder.cls.predictions.bias[3] -= 3.0
        for p in model.parameters():
            p.mul_(2.0)
    model.save_pretrained(out, safe_serialization=True)
    size = cfg.vision_config.image_size
    pixels = torch.randn(1, 3, size, size)
    with torch.no_grad():
        image = model.vision_model(pixel_values=pixels)[0]
        ids = model.generate(pixel_values=pixels, do_sample=False, num_beams=1,
                             max_new_tokens=MAX_NEW)
        first = model.text_decoder(input_ids=torch.tensor([[text["bos_token_id"]]]),
                                   encoder_hidden_states=image).logits[0, -1]
    tokens = ids[0, 1:].tolist()  # drop the [DEC] start token
    save_file({"pixel_values": pixels.contiguous(), "image_embeds": image[0].contiguous(),
               "first_logits": first.contiguous()}, os.path.join(out, "reference.safetensors"))
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump({"tokens": tokens, "max_new_tokens": MAX_NEW}, f)
    print(name, tokens)
