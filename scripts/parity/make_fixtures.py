"""Build tiny random-weight MusicGen models with transformers and record what they do.

The Rust tests load these fixtures through the real loading code and must produce the
same codes (exactly), the same waveform (max |diff| <= 1e-4, same length) and the same T5
states. Run from the repo root:

    python scripts/parity/make_fixtures.py                 # writes tests/fixtures/
    python scripts/parity/make_fixtures.py --continuation  # adds the continuation runs
                                                           # to the fixtures already there

Needs: torch, transformers, safetensors, tokenizers. The fixtures are committed, so CI
never runs this.
"""

import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    EncodecConfig,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    T5Config,
)

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures")

CORPUS = [
    "lofi hip hop beat with mellow piano and soft drums",
    "upbeat electronic dance track with punchy synth bass at 128 bpm",
    "calm acoustic guitar over a sunset at the beach, warm and nostalgic",
    "epic orchestral score with strings, brass and timpani",
    "dreamy ambient pads, slow tempo, reverb, night city lights",
    "happy reggae groove with organ skank and bass",
    "dark cinematic synthwave, driving arpeggios, neon",
    "jazz trio: upright bass, brushed drums, piano, relaxed swing",
    "a dog running in a green park on a sunny day",
    "mountains covered in snow under a blue sky",
]


def make_tokenizer(path):
    """A T5-shaped tokenizer: unigram over metaspace pieces, `</s>` appended."""
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=256, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"
    )
    tok.train_from_iterator(CORPUS * 20, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
    )
    tok.save(path)
    return tok


# Several shapes, so no dimension is accidentally hard-coded on the Rust side.
CONFIGS = {
    # d_model != hidden_size: exercises enc_to_dec_proj; weight norm saved by new torch.
    "proj_4cb": dict(t5_d=32, t5_layers=2, t5_heads=4, hidden=48, layers=2, heads=4, ffn=96,
                     codebooks=4, vocab=64, ratios=[4, 2], filters=4, enc_hidden=16,
                     conv_shortcut=False, causal=False, steps=24, layout="new"),
    # Same widths (no projection), one layer, 8 heads, a larger codebook, old weight-norm
    # names (weight_g / weight_v), conv shortcuts.
    "noproj_oldnorm": dict(t5_d=32, t5_layers=1, t5_heads=2, hidden=32, layers=1, heads=8, ffn=64,
                           codebooks=4, vocab=128, ratios=[2, 2, 2], filters=8, enc_hidden=8,
                           conv_shortcut=True, causal=False, steps=20, layout="old"),
    # Three codebooks, three layers, causal EnCodec convs, saved as pytorch_model.bin.
    "3cb_pth_causal": dict(t5_d=16, t5_layers=2, t5_heads=2, hidden=24, layers=3, heads=2, ffn=40,
                           codebooks=3, vocab=32, ratios=[5, 2], filters=4, enc_hidden=8,
                           conv_shortcut=False, causal=True, steps=18, layout="pth"),
}

PROMPT = "warm lofi beat with piano, sunset at the beach"


def build(name, c):
    torch.manual_seed(sum(map(ord, name)))
    t5 = T5Config(vocab_size=256, d_model=c["t5_d"], d_kv=c["t5_d"] // c["t5_heads"], d_ff=2 * c["t5_d"],
                  num_layers=c["t5_layers"], num_heads=c["t5_heads"], relative_attention_num_buckets=8,
                  relative_attention_max_distance=16, feed_forward_proj="relu", pad_token_id=0,
                  eos_token_id=1, decoder_start_token_id=0)
    # Enough bandwidth for exactly `codebooks` quantizers at this frame rate.
    hop = 1
    for r in c["ratios"]:
        hop *= r
    bits = (c["vocab"] - 1).bit_length()
    bandwidth = c["codebooks"] * -(-32000 // hop) * bits / 1000
    enc = EncodecConfig(sampling_rate=32000, audio_channels=1, hidden_size=c["enc_hidden"],
                        num_filters=c["filters"], num_residual_layers=1, upsampling_ratios=c["ratios"],
                        norm_type="weight_norm", kernel_size=7, last_kernel_size=7, residual_kernel_size=3,
                        dilation_growth_rate=2, use_causal_conv=c["causal"], pad_mode="reflect", compress=2,
                        num_lstm_layers=2, trim_right_ratio=1.0, codebook_size=c["vocab"],
                        codebook_dim=c["enc_hidden"], use_conv_shortcut=c["conv_shortcut"],
                        target_bandwidths=[bandwidth], chunk_length_s=None, normalize=False)
    dec = MusicgenDecoderConfig(vocab_size=c["vocab"], max_position_embeddings=256, num_hidden_layers=c["layers"],
                                ffn_dim=c["ffn"], num_attention_heads=c["heads"], hidden_size=c["hidden"],
                                num_codebooks=c["codebooks"], audio_channels=1, pad_token_id=c["vocab"],
                                bos_token_id=c["vocab"], activation_function="gelu", dropout=0.0)
    cfg = MusicgenConfig(text_encoder=t5, audio_encoder=enc, decoder=dec)
    model = MusicgenForConditionalGeneration(cfg).eval()
    # Re-randomise everything (buffers too: the codebooks start as zeros) with a spread
    # that keeps logits well separated, so greedy tokens are not decided by rounding.
    with torch.no_grad():
        for pname, p in list(model.named_parameters()) + list(model.named_buffers()):
            if p.dtype.is_floating_point and "embed_positions" not in pname:
                if pname.endswith("original0") or pname.endswith("weight_g"):
                    p.uniform_(0.5, 1.5)
                elif "layer_norm" in pname and pname.endswith("weight"):
                    p.uniform_(0.8, 1.2)
                else:
                    p.normal_(0.0, 1.0 if "embed_tokens" in pname else 0.35 if "lm_heads" in pname else 0.2)
    gen = model.generation_config
    gen.decoder_start_token_id = c["vocab"]
    gen.pad_token_id = c["vocab"]
    gen.bos_token_id = c["vocab"]
    return model


def generate(model, **kwargs):
    """model.generate(**kwargs), with the codes EnCodec is given caught on the way:
    (codes (codebooks, frames), audio)."""
    captured = {}
    decode = model.audio_encoder.decode

    def spy(audio_codes, *a, **k):
        captured["codes"] = audio_codes.clone()
        return decode(audio_codes, *a, **k)

    model.audio_encoder.decode = spy
    try:
        with torch.no_grad():
            audio = model.generate(do_sample=False, **kwargs)
    finally:
        model.audio_encoder.decode = decode
    return captured["codes"][0, 0], audio[0, 0]


def run(model, tok, prompt, steps, guidance):
    enc = tok.encode(prompt)
    ids = torch.tensor([enc.ids])
    mask = torch.ones_like(ids)
    codes, audio = generate(model, input_ids=ids, attention_mask=mask, guidance_scale=guidance,
                            max_new_tokens=steps)
    with torch.no_grad():
        hidden = model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    return ids[0], hidden[0], codes, audio


# Continuation: these many prompt frames (random codes), then max_new_tokens greedy steps.
CONTINUATION_FRAMES = 7


def continuation(name, c, model, tok):
    """Greedy generate(decoder_input_ids=<prompt codes>, guidance_scale=3): the prompt codes
    (codebooks, frames) and the codes transformers returns (the prompt's first)."""
    g = torch.Generator().manual_seed(sum(map(ord, name)) + 1)
    prompt = torch.randint(0, c["vocab"], (c["codebooks"], CONTINUATION_FRAMES), generator=g)
    ids = torch.tensor([tok.encode(PROMPT).ids])
    codes, _ = generate(model, input_ids=ids, attention_mask=torch.ones_like(ids),
                        decoder_input_ids=prompt, guidance_scale=3.0, max_new_tokens=c["steps"])
    return prompt, codes


def add_continuations():
    tok = Tokenizer.from_file(os.path.join(ROOT, "tiny_tokenizer.json"))
    for name, c in CONFIGS.items():
        out = os.path.join(ROOT, "musicgen", name)
        model = MusicgenForConditionalGeneration.from_pretrained(out).eval()
        gen = model.generation_config
        gen.decoder_start_token_id = gen.pad_token_id = gen.bos_token_id = c["vocab"]
        prompt, codes = continuation(name, c, model, tok)
        ref = load_file(os.path.join(out, "reference.safetensors"))
        ref["cont.prompt_codes"] = prompt.to(torch.int64).contiguous()
        ref["cont.codes"] = codes.to(torch.int64).contiguous()
        save_file(ref, os.path.join(out, "reference.safetensors"))
        print(name, "continuation", tuple(prompt.shape), "->", tuple(codes.shape), file=sys.stderr)


def save(name, c, model, tok, tok_path):
    out = os.path.join(ROOT, "musicgen", name)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.remove(os.path.join(out, f))
    model.save_pretrained(out)
    state_path = os.path.join(out, "model.safetensors")
    if c["layout"] == "old":
        state = load_file(state_path)
        renamed = {k.replace("parametrizations.weight.original0", "weight_g")
                    .replace("parametrizations.weight.original1", "weight_v"): v for k, v in state.items()}
        save_file(renamed, state_path, metadata={"format": "pt"})
    elif c["layout"] == "pth":
        state = load_file(state_path)
        os.remove(state_path)
        torch.save(state, os.path.join(out, "pytorch_model.bin"))
    with open(tok_path) as f, open(os.path.join(out, "tokenizer.json"), "w") as g:
        g.write(f.read())

    ref = {}
    meta = {"prompt": PROMPT, "max_new_tokens": c["steps"], "runs": {}}
    for label, guidance in (("cfg3", 3.0), ("cfg1", 1.0)):
        ids, hidden, codes, audio = run(model, tok, PROMPT, c["steps"], guidance)
        ref[f"{label}.codes"] = codes.to(torch.int64).contiguous()
        ref[f"{label}.audio"] = audio.to(torch.float32).contiguous()
        meta["runs"][label] = {"guidance": guidance, "frames": codes.shape[-1], "samples": audio.shape[-1]}
        ref["t5_hidden"] = hidden.contiguous()
        ref["input_ids"] = ids.to(torch.int64)
    save_file(ref, os.path.join(out, "reference.safetensors"))
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(name, {k: tuple(v.shape) for k, v in ref.items()}, file=sys.stderr)


def main():
    os.makedirs(ROOT, exist_ok=True)
    tok_path = os.path.join(ROOT, "tiny_tokenizer.json")
    tok = make_tokenizer(tok_path)
    for name, c in CONFIGS.items():
        save(name, c, build(name, c), tok, tok_path)


if __name__ == "__main__":
    if "--continuation" in sys.argv:
        add_continuations()
    else:
        main()
        add_continuations()
