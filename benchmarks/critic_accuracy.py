"""How close the critic comes to the exact Q^pi of small chunked MDPs, per TD-target form.

    .venv/bin/python benchmarks/critic_accuracy.py [--seeds 3] [--cases far,in-chunk,...]

For each case of `aloe.learning.exact_mdps` and each target form (the pessimistic minimum
over the heads, their mean, each head its own target, mean - 1 std), it trains the
project's critic on the behaviour data with several seeds and prints the mean absolute
error (mean and spread over the seeds) of Q (the heads' mean), of the pessimistic Q, and of
the pessimistic advantage the improvement uses. Then two broken critics on the default
form, which the tests must tell apart: a' from the data's next chunk instead of pi, and
the repeated last command past an episode's end learned as if it ran (with the spread of
the value over steps that never run, on the in-chunk case).
"""
import argparse
import statistics
import time

import torch

from aloe.learning.config import CriticConfig
from aloe.learning.exact_mdps import CASES, make_problem, measure, past_end_spread, train_critic

FORMS = {
    "min in target": CriticConfig(target="pessimistic", pessimism="min"),
    "mean in target": CriticConfig(target="mean"),
    "per-head targets": CriticConfig(target="per_head"),
    "mean-1std in target": CriticConfig(target="pessimistic", pessimism="mean_std", pessimism_lambda=1.0),
}


def summary(values) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    default = CriticConfig()
    print("| case | critic | Q error | pessimistic Q error | pessimistic A error |\n|---|---|---|---|---|", flush=True)
    for name in args.cases.split(","):
        case = CASES[name]
        problems = [make_problem(case, seed) for seed in range(args.seeds)]
        variants = [(label, config, {}) for label, config in FORMS.items()]
        variants += [("broken: a' from the data", default, {"data_next_chunk": True}),
                     ("broken: past-end steps learned", default, {"learn_past_end": True})]
        for label, config, broken in variants:
            results = []
            for seed, problem in enumerate(problems):
                critic = train_critic(problem, config, seed, **broken)
                result = measure(critic, case, config)
                if name == "in-chunk":
                    result["past_end"] = past_end_spread(critic, case)
                results.append(result)
            row = " | ".join(summary([r[k] for r in results]) for k in ("q", "q_pessimistic", "advantage"))
            extra = f" (past-end spread {summary([r['past_end'] for r in results])})" if name == "in-chunk" else ""
            print(f"| {name} | {label}{extra} | {row} |", flush=True)
    print(f"{args.seeds} seeds per row, {time.perf_counter() - start:.0f} s, {args.threads} thread(s)")


if __name__ == "__main__":
    main()
