"""The transformers (PyTorch, CPU, f32) side of the photo-understanding benchmark. Prints
one JSON line with the same fields as benches/vision.rs: per BLIP model the processor,
vision-model and caption (generate from pixel values) times; for CLIP the label-embedding,
processor and scoring (image features against the cached label features) times.

    python torch_vision.py PHOTO REPS THREADS LABELS_JSON CLIP_DIR BLIP_DIR…
"""

import json
import statistics
import sys
import time

import torch
from PIL import Image, ImageOps
from transformers import (BlipForConditionalGeneration, BlipImageProcessor, CLIPImageProcessor,
                          CLIPModel)
from tokenizers import Tokenizer

TOKENS = 20  # as benches/vision.rs


def features(out):
    """transformers 5 returns an output object whose pooler_output is the projection;
    older versions return the tensor itself."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def median_ms(reps, f):
    last = f()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        last = f()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), last


def clip_side(photo, reps, labels, model_dir):
    model = CLIPModel.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    size = model.config.vision_config.image_size
    proc = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    t = time.perf_counter()
    text = []
    for label in labels:  # one label at a time, as ours (no padding questions)
        ids = torch.tensor([tok.encode(label).ids])
        text.append(features(model.get_text_features(input_ids=ids)))
    text = torch.cat(text)
    text = text / text.norm(dim=-1, keepdim=True)
    labels_ms = (time.perf_counter() - t) * 1000
    pre_ms, pixels = median_ms(reps, lambda: proc(images=photo, return_tensors="pt")["pixel_values"])
    scale = model.logit_scale.exp()

    def score():
        image = features(model.get_image_features(pixel_values=pixels))
        image = image / image.norm(dim=-1, keepdim=True)
        return (scale * image @ text.T)[0]

    score_ms, logits = median_ms(reps, score)
    return {"labels_ms": labels_ms, "preprocess_ms": pre_ms, "score_ms": score_ms,
            "logits": logits.tolist()}


def blip_side(photo, reps, model_dir):
    model = BlipForConditionalGeneration.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    size = model.config.vision_config.image_size
    proc = BlipImageProcessor(size={"height": size, "width": size})
    pre_ms, pixels = median_ms(reps, lambda: proc(images=photo, return_tensors="pt")["pixel_values"])
    vision_ms, _ = median_ms(reps, lambda: model.vision_model(pixel_values=pixels)[0])
    caption_ms, ids = median_ms(reps, lambda: model.generate(
        pixel_values=pixels, do_sample=False, num_beams=1, max_new_tokens=TOKENS,
        min_new_tokens=TOKENS))
    return {"f32": {"preprocess_ms": pre_ms, "vision_ms": vision_ms, "caption_ms": caption_ms,
                    "tokens": ids[0, 1:].tolist()}}


def main(photo_path, reps, threads, labels_json, clip_dir, *blips):
    torch.set_num_threads(threads)
    photo = ImageOps.exif_transpose(Image.open(photo_path)).convert("RGB")
    labels = json.loads(labels_json)
    out = {}
    with torch.inference_mode():
        out["clip"] = clip_side(photo, reps, labels, clip_dir)
        for d in blips:
            out[d] = blip_side(photo, reps, d)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:])
