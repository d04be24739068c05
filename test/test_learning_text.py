"""The bundled MiniLM sentence encoder runs offline and means what it says."""
import torch

from aloe.learning.text import language_encoder


def test_paraphrases_are_close_and_other_tasks_far():
    encoder = language_encoder()
    vectors = encoder.embed([
        "put the red cube in the left bin",
        "place the red block into the left bin",
        "fold the towel in half",
    ])
    assert vectors.shape == (3, 384)
    assert torch.allclose(vectors.norm(dim=1), torch.ones(3), atol=1e-5)
    paraphrase, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert paraphrase > 0.6 and unrelated < 0.35


def test_embeddings_are_cached_and_stable():
    encoder = language_encoder()
    first = encoder.embed(["open the drawer"])
    assert "open the drawer" in encoder.cache
    assert torch.equal(first, encoder.embed(["open the drawer"]))
