"""Why the critic misses its calibration: a ladder of value fits on the same data, judged on
deployments it did not train on. No rollouts: the round-0 policy's recorded deployments
(post_training.py's deployments/) hold the returns it measured.

Data: the demonstrations the checkpoint learnt from, plus deployments --train-seeds; judged
on deployments --held-seeds. The checkpoint's frozen encoder gives the features (cached in
runs/critic_diagnostics/<task>/cache.pt with the actor's a' for the TD targets, drawn once).
Variants (--variant):
  td      the project's chunked TD (`algorithm.fit_critic`, the checkpoint's CriticConfig);
  sarsa   the same with a' the data's next chunk wherever there is one (the deployments'
          chunks are the actor's own, the demonstrations' the operator's);
  mc      Q(s, a) regressed on Monte-Carlo returns: how well these features and chunks fit
          the data's own values at all (an upper bound on the fit, not on calibration);
  value   V(s) regressed on Monte-Carlo returns, no action input;
  value-finetuned  the same with the encoder trained too (images in the loop: slow);
  td-finetuned     td with the encoder trained too (slower still).
--action-stride k shows the Q-networks every k-th step of each chunk only; --time-feature
adds the step index / 1000 to the features (insertion's deployments end at 1001 steps).
One JSON line each, appended to runs/critic_diagnostics/<task>.jsonl:
  train_terminal: mean Q (or V) on chunks that end in success, against their target (~0.95);
  train_corr: correlation of Q with the Monte-Carlo return over the training chunks;
  held_q_start / held_return: mean Q at the held-out deployments' starts (the data's chunk)
  against their mean measured return (the calibration's bias); held_spearman: their rank
  correlation; held_corr: correlation of Q with the return over all held-out chunks.

    .venv/bin/python benchmarks/critic_diagnostics.py --variant td --steps 2000
"""
import argparse
import copy
import json
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from base_policy import demo_seeds
from critic_calibration import seed_range

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("td", "sarsa", "mc", "value", "value-finetuned", "td-finetuned")


def episodes_of(args, checkpoint, seeds):
    from aloe.data.demonstrations import episode_path, load

    model = checkpoint.config.model
    paths = [episode_path(args.deployments, args.task, seed, "train") for seed in seeds]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"{len(missing)} deployments missing in {args.deployments} (first: {missing[0]})")
    size = tuple(model.image_size)
    return load(paths, size, head_crop=tuple(model.head_crop))


def datasets(args, checkpoint) -> dict:
    """{"train": (episodes, transitions), "held": (...)}."""
    from aloe.data.demonstrations import episode_path, load
    from aloe.learning.data import chunk_transitions

    model = checkpoint.config.model
    demos = [episode_path(ROOT / "runs" / "demos" / args.task, args.task, seed, "train")
             for seed in demo_seeds(args.demos, held_out=range(500, 550))]
    size = tuple(model.image_size)
    demo_episodes = load(demos, size, head_crop=tuple(model.head_crop))
    out = {}
    for name, seeds, extra in (("train", args.train_seeds, demo_episodes), ("held", args.held_seeds, [])):
        episodes = extra + episodes_of(args, checkpoint, seeds)
        out[name] = (episodes, chunk_transitions(episodes, model.horizon, checkpoint.config.data))
    return out


def build_cache(args, checkpoint, path: Path) -> dict:
    import torch

    from aloe.learning import algorithm
    from aloe.learning.train import build_observations, encode

    start = time.monotonic()
    cache = {}
    for name, (episodes, transitions) in datasets(args, checkpoint).items():
        observations = build_observations(episodes, transitions, checkpoint.normalizer, checkpoint.config, "cpu")
        cache[name] = {
            "features": encode(checkpoint.model.encoder, observations),
            "step": torch.as_tensor(transitions.observations[:, 1], dtype=torch.float32),
            "obs": torch.as_tensor(transitions.obs), "next_obs": torch.as_tensor(transitions.next_obs),
            "next_transition": torch.as_tensor(transitions.next_transition),
            "actions": torch.tensor(checkpoint.normalizer.actions(transitions.actions), dtype=torch.float32),
            "mask": torch.as_tensor(transitions.mask), "reward": torch.as_tensor(transitions.reward),
            "discount": torch.as_tensor(transitions.discount), "mc": torch.as_tensor(transitions.mc_return),
            "start": torch.as_tensor(transitions.observations[transitions.obs][:, 1] == 0),
        }
        print(f"[diagnostics] {name}: {len(transitions)} chunks encoded ({time.monotonic() - start:.0f} s)", flush=True)
    train = cache["train"]
    with torch.no_grad():
        train["next_actions"] = algorithm.sample_policy_actions(
            checkpoint.model.actor.eval(), train["features"][train["next_obs"].clamp(min=0)],
            checkpoint.config.critic.target_action_samples, torch.Generator().manual_seed(0))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(cache, path)
    print(f"[diagnostics] a' drawn, cache saved to {path} ({time.monotonic() - start:.0f} s)", flush=True)
    return cache


def critic_data(split: dict, next_actions=None):
    """The cached split as `fit_critic` takes it; a' from the cache unless given."""
    from aloe.learning import algorithm

    return algorithm.CriticData(features=split["features"], obs=split["obs"], next_obs=split["next_obs"],
                                actions=split["actions"], reward=split["reward"], discount=split["discount"],
                                next_actions=split["next_actions"] if next_actions is None else next_actions,
                                executed=split["mask"])


def fit_values(args, checkpoint, cache):
    """The variant's network, trained; returns values(split name, rows): the values of those chunks."""
    import torch

    from aloe.learning import algorithm
    from aloe.learning.networks import CriticEnsemble, ValueNet

    model, critic_config = checkpoint.config.model, checkpoint.config.critic
    train, held = cache["train"], cache["held"]
    stride = args.action_stride
    for split in (train, held):
        if args.time_feature:
            split["features"] = torch.cat([split["features"], (split["step"] / 1000.0)[:, None]], 1)
        split["actions"], split["mask"] = split["actions"][:, ::stride].contiguous(), split["mask"][:, ::stride].contiguous()
    train["next_actions"] = train["next_actions"][:, :, ::stride].contiguous()
    model = replace(model, horizon=len(range(0, model.horizon, stride)), feature_dim=train["features"].shape[1])
    generator = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    rows = lambda name, index: cache[name]["features"][cache[name]["obs"][index]]  # noqa: E731
    chunks = lambda name, index: cache[name]["actions"][index]  # noqa: E731

    if args.variant in ("td", "sarsa"):
        next_actions = train["next_actions"]
        if args.variant == "sarsa":
            following = train["next_transition"]
            data_next = train["actions"][following.clamp(min=0)].unsqueeze(1).expand_as(next_actions)
            next_actions = torch.where((following >= 0).view(-1, 1, 1, 1), data_next, next_actions)
        data = critic_data(train, next_actions)
        critic = CriticEnsemble(model)
        algorithm.fit_critic(critic, data, critic_config, args.steps, 64, generator=generator)
        critic.eval()
        return lambda name, index: critic(rows(name, index), chunks(name, index)).mean(0)
    if args.variant == "mc":
        data = critic_data(train)
        critic = CriticEnsemble(model)
        optimizer = torch.optim.Adam(critic.parameters(), lr=critic_config.lr)
        for _ in range(args.steps):
            index = torch.randint(len(data), (64,), generator=generator)
            loss = (critic(rows("train", index), algorithm.fill_unexecuted(data, index, generator)) - train["mc"][index]).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        critic.eval()
        return lambda name, index: critic(rows(name, index), chunks(name, index)).mean(0)
    if args.variant.endswith("-finetuned"):
        return fit_finetuned(args, checkpoint, cache, model, generator)
    value = ValueNet(model)
    if args.variant == "value":
        optimizer = torch.optim.Adam(value.parameters(), lr=critic_config.lr)
        for _ in range(args.steps):
            index = torch.randint(len(train["obs"]), (64,), generator=generator)
            loss = (value(rows("train", index)) - train["mc"][index]).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        value.eval()
        return lambda name, index: value(rows(name, index))
    raise SystemExit(f"unknown variant {args.variant}")


def fit_finetuned(args, checkpoint, cache, model, generator):
    """The encoder trained too, from its BC weights (images in the loop), with V(s) on
    Monte-Carlo returns ("value-finetuned") or the Q-ensemble by chunked TD ("td-finetuned",
    the next state's features from a Polyak copy of the encoder, as the target heads)."""
    import torch

    from aloe.learning import algorithm
    from aloe.learning.networks import CriticEnsemble, ValueNet
    from aloe.learning.train import build_observations, encode

    if args.time_feature or args.action_stride != 1:
        raise SystemExit(f"--variant {args.variant} takes neither --time-feature nor --action-stride")
    encoder, config = copy.deepcopy(checkpoint.model.encoder), checkpoint.config.critic
    observations = {name: build_observations(episodes, transitions, checkpoint.normalizer, checkpoint.config, "cpu")
                    for name, (episodes, transitions) in datasets(args, checkpoint).items()}
    train = cache["train"]
    td = args.variant == "td-finetuned"
    network = CriticEnsemble(model) if td else ValueNet(model)
    if td:
        data = critic_data(train)
        target_encoder, target_network = copy.deepcopy(encoder).eval(), copy.deepcopy(network)
    optimizer = torch.optim.Adam([*network.parameters(), *encoder.parameters()], lr=config.lr)
    for step in range(args.steps):
        index = torch.randint(len(train["obs"]), (64,), generator=generator)
        encoder.train()
        features = encoder(*observations["train"].rows(train["obs"][index]))
        if td:
            pick = torch.randint(train["next_actions"].shape[1], (64,), generator=generator)
            with torch.no_grad():
                following = target_encoder(*observations["train"].rows(train["next_obs"][index].clamp(min=0)))
                y = train["reward"][index] + train["discount"][index] * target_network(following, train["next_actions"][index, pick]).mean(0)
            loss = (network(features, algorithm.fill_unexecuted(data, index, generator)) - y).pow(2).mean()
        else:
            loss = (network(features) - train["mc"][index]).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if td:
            algorithm.polyak_update(target_network, network, config.polyak)
            algorithm.polyak_update(target_encoder, encoder, config.polyak)
        print(f"\r[diagnostics] {args.variant} {step + 1}/{args.steps}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    network.eval()
    with torch.no_grad():
        features = {name: encode(encoder, split) for name, split in observations.items()}
    if td:
        return lambda name, index: network(features[name][cache[name]["obs"][index]], cache[name]["actions"][index]).mean(0)
    return lambda name, index: network(features[name][cache[name]["obs"][index]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="insertion", choices=("insertion", "drawer", "sorting"))
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "runs/ladder/insertion/defaults-600demos-24k-seed1/model.safetensors")
    parser.add_argument("--demos", type=int, default=600, help="demonstrations the checkpoint learnt from (default 600)")
    parser.add_argument("--deployments", type=Path, default=ROOT / "runs/post/insertion/round1-600demos-seed1-300dep/deployments")
    parser.add_argument("--train-seeds", type=seed_range, default=range(1000, 1200))
    parser.add_argument("--held-seeds", type=seed_range, default=range(1200, 1300))
    parser.add_argument("--variant", choices=VARIANTS, default="td")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--action-stride", type=int, default=1)
    parser.add_argument("--time-feature", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if set(args.train_seeds) & set(args.held_seeds):
        raise SystemExit("--train-seeds and --held-seeds overlap")

    import torch

    from aloe.experiment.evaluation import spearman
    from aloe.learning.checkpoint import load_checkpoint

    torch.set_num_threads(args.threads)
    checkpoint = load_checkpoint(args.checkpoint)
    folder = ROOT / "runs" / "critic_diagnostics" / args.task
    cache_path = folder / "cache.pt"
    cache = torch.load(cache_path) if cache_path.exists() else build_cache(args, checkpoint, cache_path)
    started = time.monotonic()
    values = fit_values(args, checkpoint, cache)
    train, held = cache["train"], cache["held"]
    with torch.no_grad():
        every = lambda name: torch.cat([values(name, i) for i in torch.arange(len(cache[name]["obs"])).split(4096)])  # noqa: E731
        q_train, q_held = every("train"), every("held")
    terminal = (train["reward"] > 0.5) & (train["discount"] == 0)
    starts = held["start"]
    row = {
        "task": args.task, "variant": args.variant, "steps": args.steps, "action_stride": args.action_stride,
        "time_feature": args.time_feature, "seed": args.seed, "minutes": round((time.monotonic() - started) / 60, 1),
        "train_terminal": [round(float(q_train[terminal].mean()), 3), round(float(train["reward"][terminal].mean()), 3)],
        "train_corr": round(float(np.corrcoef(q_train.numpy(), train["mc"].numpy())[0, 1]), 3),
        "held_q_start": round(float(q_held[starts].mean()), 4), "held_return": round(float(held["mc"][starts].mean()), 4),
        "held_spearman": round(spearman(q_held[starts].numpy(), held["mc"][starts].numpy()), 3),
        "held_corr": round(float(np.corrcoef(q_held.numpy(), held["mc"].numpy())[0, 1]), 3),
        "command": "python benchmarks/critic_diagnostics.py " + shlex.join(sys.argv[1:]),
    }
    print(json.dumps(row), flush=True)
    with (folder.parent / f"{args.task}.jsonl").open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
