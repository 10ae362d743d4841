"""A tiny random-weight CLIP made with transformers, and its zero-shot logits.

Writes tests/fixtures/clip/tiny/: config.json, model.safetensors, tokenizer.json (a small
BPE shaped like CLIP's: `<|startoftext|> … <|endoftext|>`, end token the largest id, as in
openai/clip-vit-base-patch32), reference.safetensors (pixel values, logits per image,
normalised text and image embeddings) and reference.json (the label texts and their ids).

Needs: torch, transformers, safetensors, tokenizers. Run from the repo root.
"""

import json
import os

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import CLIPConfig, CLIPModel

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "clip", "tiny")
os.makedirs(OUT, exist_ok=True)
LABELS = [
    "a photo that feels calm and peaceful",
    "a photo that feels energetic and exciting",
    "a melancholic, rainy photo",
    "a photo of a sunny beach party",
    "a dark, mysterious night scene",
]

tok = Tokenizer(models.BPE(unk_token="<|startoftext|>"))
tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|startoftext|>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
tok.train_from_iterator(LABELS * 10, trainer)
tok.add_special_tokens(["<|endoftext|>"])
bos, eos = tok.token_to_id("<|startoftext|>"), tok.token_to_id("<|endoftext|>")
assert eos == tok.get_vocab_size() - 1
tok.post_processor = processors.TemplateProcessing(
    single="<|startoftext|> $A <|endoftext|>",
    special_tokens=[("<|startoftext|>", bos), ("<|endoftext|>", eos)])
tok.save(os.path.join(OUT, "tokenizer.json"))

torch.manual_seed(3)
cfg = CLIPConfig(
    text_config=dict(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                     num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                     bos_token_id=bos, eos_token_id=2, pad_token_id=eos, hidden_act="quick_gelu"),
    vision_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                       num_attention_heads=4, image_size=32, patch_size=8, hidden_act="quick_gelu"),
    projection_dim=24)
model = CLIPModel(cfg).eval()
with torch.no_grad():
    for name, p in model.named_parameters():
        if name != "logit_scale":  # keep logits in CLIP's usual range
            p.mul_(3.0)
model.save_pretrained(OUT, safe_serialization=True)

ids = [tok.encode(t).ids for t in LABELS]
pixels = torch.randn(1, 3, 32, 32)
with torch.no_grad():
    def features(out):  # a tensor, or an output object in newer transformers
        return out.pooler_output if hasattr(out, "pooler_output") else out

    text = torch.cat([features(model.get_text_features(input_ids=torch.tensor([i]))) for i in ids])
    image = features(model.get_image_features(pixel_values=pixels))
    text_n = text / text.norm(dim=-1, keepdim=True)
    image_n = image / image.norm(dim=-1, keepdim=True)
    logits = model.logit_scale.exp() * image_n @ text_n.T
save_file({"pixel_values": pixels.contiguous(), "logits_per_image": logits.contiguous(),
           "text_embeds": text_n.contiguous(), "image_embeds": image_n.contiguous()},
          os.path.join(OUT, "reference.safetensors"))
with open(os.path.join(OUT, "reference.json"), "w") as f:
    json.dump({"labels": LABELS, "ids": ids}, f)
print("ids", ids)
print("logits", logits)
