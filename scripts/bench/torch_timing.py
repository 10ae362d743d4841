"""What the transformers sides of the MusicGen benchmarks share."""

import time


def time_audio_decode(model):
    """Wrap the model's EnCodec decode so that `generate` times can leave it out: returns a
    dict that each call fills with its seconds ("decode") and input codes ("codes"), and a
    function that puts the original back."""
    decode = model.audio_encoder.decode
    spent = {}

    def timed_decode(*a, **k):
        t0 = time.perf_counter()
        r = decode(*a, **k)
        spent["decode"] = time.perf_counter() - t0
        spent["codes"] = a[0]
        return r

    model.audio_encoder.decode = timed_decode

    def restore():
        model.audio_encoder.decode = decode

    return spent, restore
