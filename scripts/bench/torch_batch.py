"""The transformers (PyTorch, f32) side of the batching benchmark: N prompts in one
`generate` call (its static batching: padded prompts, all songs the same length), for
each N. Prints one JSON line: per N, ms per decoder step (T5 and EnCodec left out)."""

import json
import sys
import time

import torch
from transformers import AutoTokenizer, MusicgenForConditionalGeneration

from torch_timing import time_audio_decode

# The same prompts as benches/batch.rs.
PROMPTS = [
    "warm lofi hip hop beat with mellow piano, soft drums and vinyl crackle",
    "fast techno",
    "calm orchestral strings with a slow build, cinematic and hopeful",
    "upbeat funk with slap bass and brass",
]


def main(model_dir, steps, sizes, threads, device):
    torch.set_num_threads(threads)
    model = MusicgenForConditionalGeneration.from_pretrained(model_dir, torch_dtype=torch.float32)
    model = model.to(device).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    spent, _ = time_audio_decode(model)
    out = {}
    with torch.no_grad():
        for n in sizes:
            prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
            inputs = tok(prompts, padding=True, return_tensors="pt").to(device)
            model.generate(**inputs, do_sample=True, guidance_scale=3.0, max_new_tokens=8)
            t = time.perf_counter()
            model.text_encoder(**inputs)
            t5 = time.perf_counter() - t
            t = time.perf_counter()
            model.generate(**inputs, do_sample=True, guidance_scale=3.0, max_new_tokens=steps)
            total = time.perf_counter() - t
            out[str(n)] = {"ms_per_step": (total - spent["decode"] - t5) * 1000 / steps}
    print(json.dumps(out))


if __name__ == "__main__":
    sizes = [int(s) for s in sys.argv[3].split(",")]
    main(sys.argv[1], int(sys.argv[2]), sizes, int(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else "cpu")
