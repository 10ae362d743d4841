"""Reference sentence embeddings from transformers for the real all-MiniLM-L6-v2.

Reads the model that `scripts/setup --tests` unpacks (target/test-models/all-minilm-l6-v2)
and writes tests/fixtures/minilm/reference.json: for each text, the token ids and the
embedding sentence-transformers defines for this model (BertModel's last hidden state,
mean over the tokens, scaled to unit length). Texts include an empty one, non-ASCII, and
one past the 256-token cut.

Needs: torch, transformers, tokenizers. Run from the repo root.
"""

import json
import os

import torch
from tokenizers import Tokenizer
from transformers import BertModel

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
MODEL = os.path.join(ROOT, "target", "test-models", "all-minilm-l6-v2")
OUT = os.path.join(ROOT, "tests", "fixtures", "minilm", "reference.json")
MAX_TOKENS = 256

TEXTS = [
    "rain on a tin roof at midnight, lonely saxophone",
    "a haunted house at night",
    "",
    "Crème brûlée in São Paulo — 東京の夜",
    "upbeat 80s workout with synths and no vocals, 128 bpm",
    "sad, melancholic, bittersweet music",
    " ".join(["the long road home through the hills"] * 60),
]

tok = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
tok.no_padding()
tok.no_truncation()
model = BertModel.from_pretrained(MODEL, add_pooling_layer=False).eval()

out = []
for text in TEXTS:
    ids = tok.encode(text).ids
    if len(ids) > MAX_TOKENS:  # as sentence-transformers: cut the words, keep [SEP]
        ids = ids[: MAX_TOKENS - 1] + [ids[-1]]
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
    emb = torch.nn.functional.normalize(hidden.mean(0), dim=0)
    out.append({"text": text, "ids": ids, "embedding": [round(float(x), 7) for x in emb]})

with open(OUT, "w") as f:
    json.dump({"model": "sentence-transformers/all-MiniLM-L6-v2", "texts": out}, f)
print(f"wrote {len(out)} embeddings to {OUT}")
