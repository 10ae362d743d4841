"""The transformers side of the GPU benchmark (scripts/bench/gpu), on the same GPU and
weights as benches/gpu.rs. Prints one JSON line with the same figures: per dtype the ms per
decoder step (greedy, guidance 3, one song) eager and, for SONG_DTYPE, with torch.compile
where it works within COMPILE_LIMIT_S;
a 15 s song end to end (one generate call: T5, decoding, EnCodec); songs per minute with N
songs in one generate call (its static batching); BLIP caption latency.

    python torch_gpu.py MODEL_DIR STEPS SIZES DTYPES SONG_DTYPE [BLIP_DIR]
"""

import json
import os
import signal
import statistics
import sys
import time

import torch
from tokenizers import Tokenizer
from transformers import BlipForConditionalGeneration, MusicgenForConditionalGeneration

from torch_timing import time_audio_decode

# The same prompts as benches/gpu.rs.
PROMPTS = [
    "warm lofi hip hop beat with mellow piano, soft drums and vinyl crackle",
    "fast techno",
    "calm orchestral strings with a slow build, cinematic and hopeful",
    "upbeat funk with slap bass and brass",
]
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
REPS = 3
SONG_STEPS = 753  # 15 s: 750 frames and the delay pattern's tail
CAPTION_TOKENS = 20
# torch.compile gets this long to compile and run, or is reported as failed; 0 skips it.
COMPILE_LIMIT_S = int(os.environ.get("COMPILE_LIMIT_S", "120"))


def timed(f):
    """Seconds f takes, with the GPU's queued work included."""
    torch.cuda.synchronize()
    t = time.perf_counter()
    r = f()
    torch.cuda.synchronize()
    return time.perf_counter() - t, r


def median_ms(f):
    f()  # warm-up
    runs = [timed(f) for _ in range(REPS)]
    ms = statistics.median(s for s, _ in runs) * 1000
    return ms, runs[-1][1]


def inputs(tok, prompts):
    ids = [tok.encode(p).ids for p in prompts]
    width = max(map(len, ids))
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])
    ids = torch.tensor([i + [0] * (width - len(i)) for i in ids])
    return {"input_ids": ids.cuda(), "attention_mask": mask.cuda()}


def step_ms(model, args, steps, spent):
    """ms per decoder step of a greedy generate, T5 and EnCodec left out."""
    t5_s, _ = timed(lambda: model.text_encoder(**args))
    total, _ = timed(lambda: model.generate(**args, do_sample=False, guidance_scale=3.0,
                                            max_new_tokens=steps))
    return (total - spent["decode"] - t5_s) * 1000 / steps


class Timeout(Exception):
    pass


def compiled_step_ms(model, args, steps, spent):
    """step_ms with the decoder under torch.compile, or why it could not be measured."""
    def alarm(*_):
        raise Timeout(f"no result within {COMPILE_LIMIT_S} s")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(COMPILE_LIMIT_S)
    eager = model.decoder.forward
    try:
        model.decoder.forward = torch.compile(eager, dynamic=True)
        step_ms(model, args, 8, spent)  # compiles
        return step_ms(model, args, steps, spent)
    except Exception as e:  # reported, not fatal: eager figures still stand
        return f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        model.decoder.forward = eager


def musicgen(model_dir, steps, sizes, dtypes, song_dtype):
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    one = inputs(tok, PROMPTS[:1])
    out = {"precisions": {}}
    for name in dtypes:
        model = MusicgenForConditionalGeneration.from_pretrained(
            model_dir, torch_dtype=DTYPES[name]).cuda().eval()
        spent, restore = time_audio_decode(model)
        with torch.no_grad():
            t5_ms, _ = median_ms(lambda: model.text_encoder(**one))
            step_ms(model, one, 8, spent)  # warm-up
            r = {"t5_ms": t5_ms, "ms_per_step": statistics.median(
                step_ms(model, one, steps, spent) for _ in range(REPS))}
            restore()
            if name == song_dtype and COMPILE_LIMIT_S > 0:
                spent, restore = time_audio_decode(model)
                r["compiled_ms_per_step"] = compiled_step_ms(model, one, steps, spent)
                restore()
            if name == song_dtype:
                out["song_15s"] = song(model, one)
                out["batch"] = batches(model, tok, sizes)
        out["precisions"][name] = r
        del model
        torch.cuda.empty_cache()
    return out


def song(model, one):
    """One generate call making 15 s of audio: T5, decoding (sampling), EnCodec."""
    ms, audio = median_ms(lambda: model.generate(**one, do_sample=True, guidance_scale=3.0,
                                                 max_new_tokens=SONG_STEPS))
    return {"total_ms": ms, "samples": audio.shape[-1]}


def batches(model, tok, sizes):
    """N songs in one generate call: ms per step of the decoder, and 15 s songs per minute
    of the decoder alone and end to end (T5 and EnCodec of the whole batch added)."""
    out = {}
    spent, restore = time_audio_decode(model)
    steps = 100
    for n in sizes:
        args = inputs(tok, [PROMPTS[i % len(PROMPTS)] for i in range(n)])
        model.generate(**args, do_sample=True, guidance_scale=3.0, max_new_tokens=8)
        t5_s, _ = timed(lambda: model.text_encoder(**args))
        total, _ = timed(lambda: model.generate(**args, do_sample=True, guidance_scale=3.0,
                                                max_new_tokens=steps))
        per_step = (total - spent["decode"] - t5_s) * 1000 / steps
        frames = SONG_STEPS - model.config.decoder.num_codebooks + 1
        books = model.config.decoder.num_codebooks
        codes = torch.randint(0, model.config.audio_encoder.codebook_size, (1, n, books, frames),
                              device="cuda")
        encodec_s, _ = timed(lambda: model.audio_encoder.decode(codes, [None]))
        decoder_ms = SONG_STEPS * per_step
        whole_ms = decoder_ms + (t5_s + encodec_s) * 1000
        out[str(n)] = {"ms_per_pass": per_step,
                       "songs_per_min_decoder": n * 60000 / decoder_ms,
                       "songs_per_min_end_to_end": n * 60000 / whole_ms}
    restore()
    return out


def blip(model_dir):
    out = {}
    for name, dtype in DTYPES.items():
        model = BlipForConditionalGeneration.from_pretrained(model_dir, torch_dtype=dtype).cuda().eval()
        size = model.config.vision_config.image_size
        pixels = torch.rand(1, 3, size, size, device="cuda", dtype=dtype)
        with torch.no_grad():
            vision_ms, _ = median_ms(lambda: model.vision_model(pixel_values=pixels))
            caption_ms, tokens = median_ms(lambda: model.generate(
                pixel_values=pixels, max_new_tokens=CAPTION_TOKENS, min_new_tokens=CAPTION_TOKENS))
        out[name] = {"vision_ms": vision_ms, "caption_ms": caption_ms,
                     "tokens": tokens[0].tolist()}
        del model
        torch.cuda.empty_cache()
    return out


def main(model_dir, steps, sizes, dtypes, song_dtype, blip_dir=None):
    out = musicgen(model_dir, int(steps), [int(s) for s in sizes.split(",")],
                   dtypes.split(","), song_dtype)
    out["device"] = torch.cuda.get_device_name()
    if blip_dir:
        out["blip"] = blip(blip_dir)
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
