"""What an ALOE checkpoint's improvement weights favour, and where its critic's heads disagree.

  python benchmarks/weights.py ALOE.safetensors INIT_BC.safetensors --demonstrations DEMO_BAGS --bags ROUND_BAGS...

Recomputes the weights exp(A / beta) of `aloe train` on the checkpoint's own training data
(V(s) from the actor it started from, INIT_BC, as in training) and prints:
  each kind of chunk's mean advantage (over its spread) and mean weight over the mean of all (demonstrations, the policy's own
  deployment chunks, the operator's takeovers; chunks of episodes that succeeded or failed,
  of deployment and of all), and the rank correlation of Q and of A with the Monte-Carlo return;
  the heads' spread (std over the ensemble) on the data's chunks, on chunks the actor
  samples at the same states, and on the data's chunks plus N(0, 1) noise.
docs/results.md quotes these figures for insertion.
"""
import argparse

import numpy as np
import torch

from aloe.data.bag_dataset import episodes_from_bags
from aloe.experiment.evaluation import spearman
from aloe.learning import algorithm
from aloe.learning.checkpoint import load_checkpoint
from aloe.learning.data import chunk_transitions
from aloe.learning.train import build_observations, encode

BATCH = 1024


def ensemble_q(critic, features, actions) -> torch.Tensor:
    """(K, N) Q of every head, in batches."""
    return torch.cat([critic(features[i:i + BATCH], actions[i:i + BATCH]) for i in range(0, len(features), BATCH)], 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="an aloe checkpoint")
    parser.add_argument("init", help="the bc checkpoint it was trained from")
    parser.add_argument("--demonstrations", required=True, help="folder of the demonstration bags it trained on")
    parser.add_argument("--bags", nargs="+", required=True, help="folders of the deployment bags it trained on")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    checkpoint, init = load_checkpoint(args.checkpoint), load_checkpoint(args.init)
    if checkpoint.model.critic is None:
        parser.error(f"{args.checkpoint} has no critic: an aloe checkpoint is needed")
    config = checkpoint.config
    quiet = lambda line: None  # noqa: E731
    demonstrations = episodes_from_bags([args.demonstrations], config.model.image_size, config.model.head_crop, quiet)
    episodes = demonstrations + episodes_from_bags(args.bags, config.model.image_size, config.model.head_crop, quiet)
    transitions = chunk_transitions(episodes, config.model.horizon, config.data)
    observations = build_observations(episodes, transitions, checkpoint.normalizer, config, "cpu")
    model, generator = checkpoint.model.eval(), torch.Generator().manual_seed(0)
    with torch.no_grad():
        starts = encode(model.encoder, observations)[torch.as_tensor(transitions.obs)]
        actions = torch.tensor(checkpoint.normalizer.actions(transitions.actions), dtype=torch.float32)
        sampled = algorithm.sample_policy_actions(init.model.actor.eval(), starts, config.improve.value_samples, generator)
        advantages = algorithm.action_level_advantages(model.critic, starts, actions, sampled, config.critic)
        q_data = algorithm.pessimistic(ensemble_q(model.critic, starts, actions), config.critic)
    weights = algorithm.advantage_weights(advantages, config.improve.beta, config.improve.max_weight, config.improve.normalize_advantages)
    print(f"{len(transitions)} chunk transitions of {len(episodes)} episodes; "
          f"effective sample fraction {algorithm.effective_sample_fraction(weights):.3f}")

    episode = transitions.episode
    demonstration = episode < len(demonstrations)
    operator = transitions.intervention.astype(bool)
    outcome = np.array([e.outcome for e in episodes])[episode]
    kinds = {
        "demonstrations": demonstration,
        "deployment, policy chunks": ~operator & ~demonstration,
        "deployment, operator chunks": operator & ~demonstration,
        "deployment, episodes that succeeded": ~demonstration & (outcome == "success"),
        "deployment, episodes that failed": ~demonstration & (outcome == "failure"),
        "all episodes that succeeded": outcome == "success",
        "all episodes that failed": outcome == "failure",
    }
    print(f"\n{'chunks':38s} {'n':>6s} {'mean A / std(A)':>16s} {'weight / mean':>14s}")
    for name, rows in kinds.items():
        if rows.any():
            print(f"{name:38s} {rows.sum():6d} {advantages[rows].mean().item() / advantages.std().item():+16.3f} "
                  f"{weights[rows].mean().item() / weights.mean().item():14.3f}")
    print(f"\nSpearman with the Monte-Carlo return: Q {spearman(q_data.numpy(), transitions.mc_return):.3f}, "
          f"A {spearman(advantages.numpy(), transitions.mc_return):.3f}")

    print(f"\n{'chunks at the data states':38s} {'Q mean':>7s} {'head std':>9s} {'pessimistic':>12s}")
    noisy = actions + torch.randn(actions.shape, generator=generator)
    with torch.no_grad():
        for name, chunks in (("the data's", actions), ("the actor's", sampled[:, 0]), ("the data's + N(0, 1)", noisy)):
            q = ensemble_q(model.critic, starts, chunks)
            print(f"{name:38s} {q.mean().item():7.3f} {q.std(0).mean().item():9.4f} "
                  f"{algorithm.pessimistic(q, config.critic).mean().item():12.3f}")


if __name__ == "__main__":
    main()
