"""Does the instruction embedding carry which bin each object goes to? Sorting's instruction
names three objects and a bin for each; the policy sees `aloe.learning.text`'s sentence
embedding. This prints the cosine similarity between the embeddings of the six bin
assignments of the same three objects, and between one assignment and the same bins said
of other colours: when the assignments lie closer together than a change of colours, the
embedding has all but erased what sorting needs from it.

    .venv/bin/python benchmarks/language_binding.py
"""
import itertools

from aloe.learning.text import language_encoder

OBJECTS = ("the red cube", "the blue cylinder", "the green block")
RECOLOURED = ("the yellow cube", "the red cylinder", "the blue block")


def instruction(objects, bins) -> str:  # worded as aloe.sim.tasks.Sorting words it
    parts = [f"{name} in the {side} bin" for name, side in zip(objects, bins)]
    return "put " + ", ".join(parts[:-1]) + " and " + parts[-1]


def main() -> None:
    assignments = [bins for bins in itertools.product(("left", "right"), repeat=3) if len(set(bins)) > 1]
    encoder = language_encoder()
    embeddings = encoder.embed([instruction(OBJECTS, bins) for bins in assignments])
    similarity = (embeddings @ embeddings.T).numpy()
    pairs = [similarity[i, j] for i in range(len(assignments)) for j in range(i + 1, len(assignments))]
    recoloured = encoder.embed([instruction(RECOLOURED, assignments[0])])[0] @ embeddings[0]
    print(f"six bin assignments of the same objects: cosine similarity {min(pairs):.4f} to {max(pairs):.4f}")
    print(f"the same bins, other colours:            cosine similarity {float(recoloured):.4f}")


if __name__ == "__main__":
    main()
