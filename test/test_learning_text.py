"""The bundled MiniLM sentence encoder runs offline and means what it says."""
import itertools
import random

import torch

from aloe.learning.networks import TokenAttentionPool
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


def test_token_vectors_are_the_sentence_vector_before_pooling():
    encoder = language_encoder()
    texts = ["open the drawer", "put the red cube in the left bin and the blue cylinder in the right bin"]
    tokens, mask = encoder.tokens(texts)
    assert tokens.shape[:2] == mask.shape and mask.sum(1).tolist()[0] < mask.sum(1).tolist()[1]
    assert not tokens[0][~mask[0]].any()  # padding is zero
    pooled = torch.nn.functional.normalize(tokens[0][mask[0]].mean(0), dim=0)
    assert torch.allclose(pooled, encoder.embed(texts[:1])[0], atol=1e-5)


COLOURS = ("red", "blue", "green", "yellow", "orange", "purple")
NOUNS = ("cube", "cylinder", "block")


def sorting_instructions(colour_sets):
    """Sorting's wording (aloe.sim.tasks.Sorting) for every bin assignment that uses both bins."""
    assignments = [bins for bins in itertools.product(("left", "right"), repeat=3) if len(set(bins)) > 1]
    texts, right = [], []
    for colours in colour_sets:
        for bins in assignments:
            parts = [f"the {c} {n} in the {b} bin" for c, n, b in zip(colours, NOUNS, bins)]
            texts.append("put " + ", ".join(parts[:-1]) + " and " + parts[-1])
            right.append([float(side == "right") for side in bins])
    return texts, torch.tensor(right)


def held_out_sorting_tokens():
    """Token vectors and bins of 180 sorting instructions to train on and 120 others to test
    on, with colour sets the training part never saw."""
    colour_sets = list(itertools.permutations(COLOURS, 3))
    random.Random(0).shuffle(colour_sets)
    encoder = language_encoder()
    train_texts, train_bins = sorting_instructions(colour_sets[:30])
    test_texts, test_bins = sorting_instructions(colour_sets[30:50])
    return (encoder.tokens(train_texts), train_bins), (encoder.tokens(test_texts), test_bins)


def test_attention_over_tokens_reads_each_objects_bin_from_unseen_instructions():
    """What sorting needs from language: the bin of the first, second and third object named.
    Trained on 180 instructions, the token path must read them off 120 it never saw."""
    torch.manual_seed(0)
    (train_tokens, train_bins), (test_tokens, test_bins) = held_out_sorting_tokens()
    pool, head = TokenAttentionPool(32), torch.nn.Linear(32, 3)
    optimizer = torch.optim.Adam([*pool.parameters(), *head.parameters()], 3e-4)
    for _ in range(1500):
        rows = torch.randint(len(train_bins), (32,))
        logits = head(torch.relu(pool(train_tokens[0][rows], train_tokens[1][rows])))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, train_bins[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        predicted = head(torch.relu(pool(*test_tokens))) > 0
    accuracy = (predicted.float() == test_bins).float().mean().item()
    assert accuracy >= 0.9, f"held-out bins read correctly: {accuracy:.3f}"


def test_a_state_conditioned_query_reads_the_bin_of_the_object_the_state_names():
    """With a state the queries are steered by it: the pool's output alone answers "which bin
    for the object the state names" (one of three, one-hot) on instructions it never saw.
    A pool that dropped the state could not know which object is asked about: the best
    answer the same for all three objects is right for two of them (both bins are used)."""
    torch.manual_seed(0)
    (train_tokens, train_bins), (test_tokens, test_bins) = held_out_sorting_tokens()
    pool, head = TokenAttentionPool(32, state=3), torch.nn.Linear(32, 1)
    optimizer = torch.optim.Adam([*pool.parameters(), *head.parameters()], 3e-4)
    held = torch.eye(3)
    for _ in range(1500):
        rows, objects = torch.randint(len(train_bins), (32,)), torch.randint(3, (32,))
        logits = head(torch.relu(pool(train_tokens[0][rows], train_tokens[1][rows], state=held[objects])))[:, 0]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, train_bins[rows, objects])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        predicted = torch.stack([head(torch.relu(pool(*test_tokens, state=held[k].expand(len(test_bins), 3))))[:, 0] > 0
                                 for k in range(3)], dim=1)
    accuracy = (predicted.float() == test_bins).float().mean().item()
    assert accuracy >= 0.9, f"held-out bins read for the object the state names: {accuracy:.3f}"
