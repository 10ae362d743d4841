"""The transformers (PyTorch, CPU, f32) side of the MusicGen benchmark. Prints one JSON
line: ms per decoder step (guidance 3, batch of 2), T5 ms, EnCodec ms for N frames."""

import json
import sys
import time

import torch
from tokenizers import Tokenizer
from transformers import MusicgenForConditionalGeneration

from torch_timing import time_audio_decode


def main(model_dir, prompt, steps, frames, threads):
    torch.set_num_threads(threads)
    model = MusicgenForConditionalGeneration.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    ids = torch.tensor([tok.encode(prompt).ids])
    mask = torch.ones_like(ids)
    out = {}
    with torch.no_grad():
        model.text_encoder(input_ids=ids, attention_mask=mask)  # warm-up
        t = time.perf_counter()
        model.text_encoder(input_ids=ids, attention_mask=mask)
        out["t5_ms"] = (time.perf_counter() - t) * 1000

        spent, restore = time_audio_decode(model)
        model.generate(input_ids=ids, attention_mask=mask, do_sample=False, guidance_scale=3.0,
                       max_new_tokens=8)  # warm-up
        t = time.perf_counter()
        model.generate(input_ids=ids, attention_mask=mask, do_sample=False, guidance_scale=3.0,
                       max_new_tokens=steps)
        total = time.perf_counter() - t
        restore()
        out["ms_per_step"] = (total - spent["decode"] - out["t5_ms"] / 1000) * 1000 / steps
        out["greedy_codes"] = spent["codes"][0, 0].tolist()

        codes = torch.randint(0, model.config.audio_encoder.codebook_size,
                              (1, 1, model.config.decoder.num_codebooks, frames))
        t = time.perf_counter()
        audio = model.audio_encoder.decode(codes, [None]).audio_values
        out["encodec_ms"] = (time.perf_counter() - t) * 1000
        out["encodec_samples"] = audio.shape[-1]
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
