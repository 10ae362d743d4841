"""Small committed photo fixtures for intake tests and preprocessing parity.

Writes tests/fixtures/photos/: good photos in every accepted format and the hostile ones
(truncated JPEG, PNG bomb header, text named .jpg, CMYK JPEG, 16-bit PNG, grey, alpha,
animated GIF, EXIF-rotated JPEG), plus `preprocess.safetensors`: transformers' BLIP and
CLIP processors' pixel values for three photos at small sizes (same algorithms as 384/224,
small enough to commit).

Needs: pillow, numpy, torch, transformers, safetensors. Run from the repo root.
"""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import BlipImageProcessor, CLIPImageProcessor

OUT = Path("tests/fixtures/photos")
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(7)


def scene(w, h, seed):
    """A photo-like picture: sky gradient, sun, hills, some texture."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    img[..., 0] = 40 + 150 * (y / h)
    img[..., 1] = 90 + 100 * (y / h)
    img[..., 2] = 200 - 80 * (y / h)
    cx, cy = r.uniform(0.2, 0.8) * w, r.uniform(0.1, 0.4) * h
    sun = ((x - cx) ** 2 + (y - cy) ** 2) < (0.08 * min(w, h)) ** 2
    img[sun] = [250, 210, 90]
    hill = y > h * (0.65 + 0.1 * np.sin(x / w * 6.0 + seed))
    img[hill] = np.stack([30 + 0 * x[hill], 120 + 40 * np.sin(x[hill] / 7), 50 + 0 * x[hill]], -1)
    img += r.normal(0, 6, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def jpeg(img, **kw):
    b = io.BytesIO()
    img.save(b, "JPEG", quality=90, **kw)
    return b.getvalue()


photos = {
    "landscape.jpg": scene(320, 200, 1),
    "portrait.png": scene(150, 260, 2),
    "square.webp": scene(240, 240, 3),
}
for name, img in photos.items():
    fmt = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[name.rsplit(".", 1)[1]]
    img.save(OUT / name, fmt, **({"quality": 90} if fmt != "PNG" else {}))

# EXIF orientation 6 (rotate 90° clockwise to view): stored 120×80, shown 80×120.
exif = Image.Exif()
exif[0x0112] = 6
exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # a GPS latitude, which must not survive
(OUT / "rotated_exif.jpg").write_bytes(jpeg(scene(120, 80, 4), exif=exif.tobytes()))

full = jpeg(scene(200, 150, 5))
(OUT / "truncated.jpg").write_bytes(full[: len(full) // 2])
(OUT / "text.jpg").write_bytes(b"this is not a photo, just text with a .jpg name\n")
(OUT / "cmyk.jpg").write_bytes(jpeg(scene(64, 48, 6).convert("CMYK")))

grey = scene(64, 48, 7).convert("L")
grey.save(OUT / "grey.png")
rgba = scene(64, 48, 8).convert("RGBA")
alpha = np.array(rgba)
alpha[:, :32, 3] = 0
Image.fromarray(alpha).save(OUT / "alpha.png")
sixteen = (np.array(grey).astype(np.uint16) * 257).astype(np.uint16)
Image.fromarray(sixteen).save(OUT / "sixteen.png")

frames = [scene(48, 32, s) for s in (9, 10, 11)]
frames[0].save(OUT / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# A decompression bomb: the header declares 50000×50000 RGB; the data is a few bytes.
bomb = b"\x89PNG\r\n\x1a\n"
bomb += chunk(b"IHDR", struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0))
bomb += chunk(b"IDAT", zlib.compress(b"\0" * 1000))
bomb += chunk(b"IEND", b"")
(OUT / "bomb.png").write_bytes(bomb)

# Preprocessing references (PIL-based processors, as transformers runs them).
blip = BlipImageProcessor(size={"height": 64, "width": 64})
clip = CLIPImageProcessor(size={"shortest_edge": 48}, crop_size={"height": 48, "width": 48})
tensors = {}
for name in photos:
    img = Image.open(OUT / name).convert("RGB")
    key = name.rsplit(".", 1)[0]
    tensors[f"blip.{key}"] = torch.tensor(blip(img, return_tensors="np")["pixel_values"][0])
    tensors[f"clip.{key}"] = torch.tensor(clip(img, return_tensors="np")["pixel_values"][0])
save_file({k: v.contiguous() for k, v in tensors.items()}, OUT / "preprocess.safetensors")
print("wrote", sorted(p.name for p in OUT.iterdir()))
