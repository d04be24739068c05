"""Figures of the learning core on this machine: run `python benchmarks/learning.py`.

  actor inference latency, batch 1, three images at the default size: p50 / p99 (goal p99 <= 30 ms)
  one pre-training (BC) step with images, as `aloe train` takes it: median ms (what BC's minutes scale with)
  critic training throughput on cached features, chunk-transitions/s (goal >= 5,000/s)
  peak memory of one training step (behaviour cloning with images, the largest step)
Each figure is the median over several runs; the threads are fixed (default 2) because
these machines are shared and noisy.
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from aloe.learning.algorithm import CriticData, fit_critic
from aloe.learning.checkpoint import VLAModel
from aloe.learning.config import CriticConfig, TrainConfig, from_dict, to_dict
from aloe.learning.text import language_input


def actor_latency(model, config, calls: int = 200):
    m = config.model
    joints = torch.zeros(1, m.joint_dim)
    images = torch.randint(0, 255, (1, m.cameras, *m.image_size, 3), dtype=torch.uint8)
    language = language_input(["put the phone in the box"], m.language_tokens) if m.use_language else None
    times = []
    with torch.no_grad():
        for i in range(calls + 20):
            start = time.perf_counter()
            model.actor.sample(model.encoder(joints, images, language))
            if i >= 20:  # warm-up calls excluded
                times.append(time.perf_counter() - start)
    times.sort()
    return 1000 * times[len(times) // 2], 1000 * times[int(len(times) * 0.99) - 1]


def bc_step_ms(model, config, steps: int = 10) -> float:
    """Median wall time of one BC step (forward, backward, Adam) on random images, batch of
    batch_size / pretrain_noise_draws observations x the draws, as pre-training takes it."""
    from aloe.learning.train import BehaviourCloning

    m, draws = config.model, config.pretrain_noise_draws
    b = max(1, config.batch_size // draws)
    bc = BehaviourCloning(model.encoder, model.actor).train()
    optimizer = torch.optim.Adam(bc.parameters())
    batch = (torch.zeros(b, m.joint_dim), torch.randint(0, 255, (b, m.cameras, *m.image_size, 3), dtype=torch.uint8),
             language_input(["put the phone in the box"] * b, m.language_tokens) if m.use_language else None,
             torch.randn(b, m.horizon, m.action_dim), torch.ones(b, m.horizon, dtype=torch.bool))
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        bc(*batch, draws=draws).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        if i >= 2:  # warm-up steps excluded
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def critic_throughput(model, config, steps: int = 100, batch: int = 256, transitions: int = 4096):
    m = config.model
    data = CriticData(
        features=torch.randn(transitions, m.feature_dim),
        obs=torch.arange(transitions),
        next_obs=torch.randint(0, transitions, (transitions,)),
        actions=torch.randn(transitions, m.horizon, m.action_dim),
        reward=torch.zeros(transitions),
        discount=torch.full((transitions,), 0.9),
        next_actions=torch.randn(transitions, 2, m.horizon, m.action_dim),
    )
    start = time.perf_counter()
    fit_critic(model.critic, data, CriticConfig(), steps, batch)
    return steps * batch / (time.perf_counter() - start)


def training_step_peak_mb(threads: int, config: TrainConfig) -> float:
    """Peak resident memory growth of one BC step with images, in a fresh process."""
    probe = f"""
import json, resource, torch
torch.set_num_threads({threads})
from aloe.learning.checkpoint import VLAModel
from aloe.learning.config import TrainConfig, from_dict
from aloe.learning.text import language_input
from aloe.learning.train import BehaviourCloning
config = from_dict(TrainConfig, json.loads({json.dumps(json.dumps(to_dict(config)))!s})); m = config.model
model = VLAModel(config, with_critic=True)
bc = BehaviourCloning(model.encoder, model.actor)
optimizer = torch.optim.Adam(bc.parameters())
b = config.batch_size
batch = (torch.zeros(b, m.joint_dim), torch.randint(0, 255, (b, m.cameras, *m.image_size, 3), dtype=torch.uint8),
         language_input(["put the phone in the box"] * b, m.language_tokens), torch.randn(b, m.horizon, m.action_dim), torch.ones(b, m.horizon, dtype=torch.bool))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
bc(*batch).mean().backward(); optimizer.step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
    return float(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--config", action="append", default=[], help="training config YAML to measure instead of the defaults (repeatable, later wins)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    values = {}
    for file in args.config:
        values.update(yaml.safe_load(Path(file).read_text()) or {})
    config = from_dict(TrainConfig, values)
    model = VLAModel(config, with_critic=True).eval()
    m = config.model
    print(f"{'model of ' + ', '.join(args.config) if args.config else 'default model'}: H={m.horizon}, A={m.action_dim}, {m.cameras} cameras {m.image_size[0]}x{m.image_size[1]}, "
          f"{m.flow_steps} flow steps, K={m.ensemble_size} Q-heads; {args.threads} threads, median of {args.runs} runs")
    latencies = [actor_latency(model, config) for _ in range(args.runs)]
    print(f"actor chunk inference, batch 1: p50 {statistics.median(p for p, _ in latencies):.1f} ms, "
          f"p99 {statistics.median(q for _, q in latencies):.1f} ms (goal p99 <= 30 ms)")
    steps = [bc_step_ms(model, config) for _ in range(args.runs)]
    print(f"one BC step with images ({config.batch_size // config.pretrain_noise_draws} observations x {config.pretrain_noise_draws} draws): "
          f"median {statistics.median(steps):.0f} ms (min {min(steps):.0f}, max {max(steps):.0f})")
    model.eval()
    model.critic.train()
    rates = [critic_throughput(model, config) for _ in range(args.runs)]
    print(f"critic training on cached features: {statistics.median(rates):,.0f} chunk-transitions/s "
          f"(batch 256; min {min(rates):,.0f}, max {max(rates):,.0f}; goal >= 5,000/s)")
    peaks = [training_step_peak_mb(args.threads, config) for _ in range(3)]
    print(f"peak memory of a BC training step with images (batch {config.batch_size}): "
          f"+{statistics.median(peaks):.0f} MiB over the loaded model, median of 3 fresh processes")
    print(f"process peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
