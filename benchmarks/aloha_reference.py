"""The ALOHA reference benchmark in one command: aloe's actor on gym-aloha's own task, beside
the ACT paper's published figures.

    .venv/bin/python benchmarks/aloha_reference.py --task transfer_cube   (or --task insertion)

Four steps, each resumable (run the same command again after a stop; it goes on from the
first unfinished one, keeping what was done, in runs/aloha/<task>/):
  1. the reference environment, .venv-reference (`scripts/reference_env.sh`);
  2. scripted demonstrations until --demos are kept (`benchmarks/aloha_demos.py`, seeds
     0.., each replayed through the joint-space task, kept only on success);
  3. BC with `aloe train`'s code and config/experiment-train.yaml's model (the head camera,
     gym-aloha's top camera, cut to the table instead of our tasks' workspace), saving its
     state every 500 steps;
  4. --episodes evaluation episodes on seeds from --first-seed (apart from the demonstration
     seeds), gym-aloha's task stepped in its environment (`benchmarks/aloha_server.py`) and
     the policy here, with the policy node's chunk execution. An episode succeeds when the
     task's reward reaches its top (4), as gym-aloha's `is_success`.
It prints a table: our success rate with its Wilson 95 % interval beside ACT's and
LeRobot's, the reward stages reached, and what BC cost on this machine.
"""
import argparse
import base64
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_PYTHON = ROOT / ".venv-reference" / "bin" / "python"
EPISODE_STEPS = 400  # gym-aloha's episodes: 8 s at 50 Hz
TOP_REWARD = 4
# gym-aloha's top camera over the whole table, as fractions of the image (top, left, height, width):
# what our tasks' default head crop is to their workspace.
TABLE_CROP = [0.2, 0.125, 0.6, 0.75]
# Published success rates with 50 scripted demonstrations (ACT: Zhao et al. 2023, Table 1;
# LeRobot: its ACT on transfer cube with human data, 500 episodes).
PUBLISHED = {"transfer_cube": {"ACT (scripted data)": 0.90, "ACT (human data)": 0.50, "LeRobot ACT (human data)": 0.876},
             "insertion": {"ACT (scripted data)": 0.50, "ACT (human data)": 0.20}}
STAGES = {"transfer_cube": ("touched", "lifted", "handed over", "held by the left only"),
          "insertion": ("touched both", "lifted both", "peg touches socket", "inserted")}


def say(text: str) -> None:
    print(f"[aloha] {text}", flush=True)


def read_lines(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ---------------------------------------------------------------- steps 1-2

def demonstrations(args, folder: Path) -> Path:
    done = subprocess.run(["bash", str(ROOT / "scripts" / "reference_env.sh")])
    if done.returncode:
        raise SystemExit("the reference environment did not install (see above)")
    demos, log = folder / "demos", folder / "demos.jsonl"
    kept = sum(row["kept"] for row in read_lines(log))
    if kept < args.demos:
        say(f"scripted demonstrations: {kept} of {args.demos} kept so far")
        command = [str(REFERENCE_PYTHON), str(ROOT / "benchmarks" / "aloha_demos.py"), "--task", args.task, "--first-seed", "0",
                   "--episodes", str(args.max_demo_seeds), "--until-kept", str(args.demos), "--out", str(demos), "--log", str(log)]
        code = subprocess.run(command, env={**os.environ, "MUJOCO_GL": "egl"}).returncode
        if code == 3:  # aloha_demos: the log was made with other settings
            raise SystemExit(f"{folder} holds demonstrations the script makes otherwise now (see above); use another --out")
        if code:
            raise SystemExit("the demonstrations stopped with an error (see above); the same command goes on from there")
    tried = read_lines(log)
    kept = sum(row["kept"] for row in tried)
    if kept < args.demos:
        raise SystemExit(f"only {kept} of {len(tried)} seeds gave a demonstration that succeeded; raise --max-demo-seeds")
    return demos


# ---------------------------------------------------------------- step 3

def train_bc(args, demos: Path, folder: Path) -> Path:
    import torch

    from aloe.data.aloha import load_demonstrations
    from aloe.learning.checkpoint import save_checkpoint
    from aloe.learning.config import to_dict
    from aloe.learning.data import fingerprint
    from aloe.learning.resume import ResumeFile
    from aloe.learning.train import train
    from base_policy import build_config

    model_path, record = folder / "model.safetensors", folder / "train.json"
    if model_path.exists() and record.exists():
        trained = json.loads(record.read_text())
        if (trained["steps"], trained["demos"]) != (args.steps, args.demos):
            raise SystemExit(f"{folder} holds a model of {trained['steps']} BC steps on {trained['demos']} demonstrations, "
                             f"not {args.steps} on {args.demos}: use another --out, or remove {model_path.name} and "
                             f"evaluation.jsonl there to train again")
        return model_path
    config = build_config(argparse.Namespace(config=[str(ROOT / "config" / "experiment-train.yaml")], steps=args.steps,
                                             seed=args.seed, set=[f"model.head_crop={TABLE_CROP}", *args.set]))
    episodes = load_demonstrations(demos, tuple(config.model.image_size), tuple(config.model.head_crop), limit=args.demos)
    say(f"BC on {len(episodes)} demonstrations ({sum(len(e) for e in episodes)} steps), {config.pretrain_steps} steps")
    torch.set_num_threads(args.threads)
    resume = ResumeFile.for_rank(folder / "resume.pt", 500, {"config": to_dict(config), "data": fingerprint(episodes)},
                                 rank=0, world_size=1)
    resumed = (folder / "resume.pt").exists()
    start = time.monotonic()
    checkpoint = train(config, episodes, log_dir=folder / "tensorboard", resume=resume)
    minutes = (time.monotonic() - start) / 60
    save_checkpoint(checkpoint, model_path)
    resume.remove()
    # After a resume, the minutes are those of the last start only: `resumed` says so.
    record.write_text(json.dumps({"steps": config.pretrain_steps, "minutes": round(minutes, 1), "demos": len(episodes),
                                  "threads": args.threads, "resumed": resumed}))
    return model_path


# ---------------------------------------------------------------- step 4

class ReferenceEnv:
    """gym-aloha's task in the reference environment, one JSON line each way."""

    def __init__(self, task: str, image_size):
        self.process = subprocess.Popen(
            [str(REFERENCE_PYTHON), str(ROOT / "benchmarks" / "aloha_server.py"), "--task", task, "--image-size", *map(str, image_size)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={**os.environ, "MUJOCO_GL": "egl"})
        ready = self.process.stdout.readline()
        if not ready:
            raise SystemExit("the gym-aloha server did not start (see above)")

    def request(self, **fields) -> dict:
        self.process.stdin.write(json.dumps(fields) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        if "error" in answer:
            raise RuntimeError(answer["error"])
        if "images" in answer:
            answer["images"] = np.frombuffer(base64.b64decode(answer["images"]), np.uint8).reshape(answer["shape"])
        return answer

    def close(self) -> None:
        self.process.stdin.write(json.dumps({"op": "close"}) + "\n")
        self.process.stdin.close()
        self.process.wait(timeout=30)


def rollout(policy, env: ReferenceEnv, seed: int, instruction: str, replan_every: int, temporal_ensembling: bool) -> dict:
    """One episode: a new chunk whenever the policy node would take one, the cameras rendered
    only then, the chunk's steps sent as joint targets (gym-aloha's action)."""
    import torch

    from aloe.control.chunking import Chunk, ChunkExecutor

    executor = ChunkExecutor(replan_every, temporal_ensembling)
    generator = torch.Generator().manual_seed(seed)  # the flow's noise: the episode is reproducible
    answer = env.request(op="reset", seed=seed, render=True)
    rewards, chunks, command = [], 0, None
    for _ in range(EPISODE_STEPS):
        if executor.wants_observation():
            chunks += 1
            executor.add(Chunk(policy.act(np.asarray(answer["qpos"], np.float32), answer["images"], instruction, generator),
                               chunks, policy.version, executor.step))
        step = executor.tick()
        command = step.positions if step is not None else command
        answer = env.request(op="step", action=np.asarray(command, float).tolist(), render=executor.wants_observation())
        rewards.append(answer["reward"])
    return {"seed": seed, "success": max(rewards) == TOP_REWARD, "max_reward": max(rewards), "final_reward": rewards[-1]}


def evaluate(args, model_path: Path, folder: Path) -> list:
    import torch

    from aloe.data.aloha import INSTRUCTIONS
    from aloe.learning.policy import Policy

    results_path = folder / "evaluation.jsonl"
    results = read_lines(results_path)
    done = {r["seed"] for r in results}
    seeds = [s for s in range(args.first_seed, args.first_seed + args.episodes) if s not in done]
    if not seeds:
        return results
    torch.set_num_threads(args.threads)
    policy = Policy.load(model_path)
    env = ReferenceEnv(args.task, args.image_size)
    say(f"evaluating on {len(seeds)} seeds ({len(done)} done before)")
    try:
        for seed in seeds:
            start = time.monotonic()
            result = rollout(policy, env, seed, INSTRUCTIONS[args.task], args.replan_every, args.temporal_ensembling)
            result["seconds"] = round(time.monotonic() - start, 1)
            results.append(result)
            with results_path.open("a") as handle:
                handle.write(json.dumps(result) + "\n")
            wins = sum(r["success"] for r in results)
            say(f"seed {seed}: {'success' if result['success'] else 'failure'} (reward {result['max_reward']}), "
                f"{wins}/{len(results)} so far, {result['seconds']} s")
    finally:
        env.close()
    return results


def table(args, results: list, folder: Path) -> str:
    from aloe.experiment.evaluation import wilson_interval

    wins, n = sum(r["success"] for r in results), len(results)
    low, high = wilson_interval(wins, n)
    trained = json.loads((folder / "train.json").read_text())
    lines = [f"| {args.task} | success | 95 % interval |", "| --- | --- | --- |",
             f"| aloe BC ({trained['demos']} scripted demos, {trained['steps']} steps) | {wins}/{n} = {wins / n:.0%} | {low:.0%}-{high:.0%} |"]
    lines += [f"| {name} | {rate:.1%} | published |" for name, rate in PUBLISHED[args.task].items()]
    reached = [sum(r["max_reward"] >= level for r in results) / n for level in range(1, TOP_REWARD + 1)]
    lines.append("")
    lines.append("stages (share of episodes whose reward reached each level): "
                 + ", ".join(f"{name} {share:.2f}" for name, share in zip(STAGES[args.task], reached)))
    lines.append(f"BC cost: {trained['steps']} steps in {trained['minutes']} min on this machine ({trained['threads']} threads"
                 + (", the last start of a resumed run)" if trained["resumed"] else ")"))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(PUBLISHED), default="transfer_cube")
    parser.add_argument("--demos", type=int, default=50, help="scripted demonstrations kept (ACT: 50)")
    parser.add_argument("--max-demo-seeds", type=int, default=200, help="seeds tried at most for them")
    parser.add_argument("--steps", type=int, help="BC steps (default: config/experiment-train.yaml's pretrain_steps)")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, e.g. model.horizon=25")
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes (default 50)")
    parser.add_argument("--first-seed", type=int, default=100000, help="first evaluation seed (demonstrations use 0..)")
    parser.add_argument("--replan-every", type=int, default=25)
    parser.add_argument("--temporal-ensembling", action="store_true")
    parser.add_argument("--image-size", type=int, nargs=2, default=[240, 320], metavar=("H", "W"),
                        help="rendered camera size, as the demonstrations' (the model resizes)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "aloha", help="results folder (a subfolder per task)")
    args = parser.parse_args()
    if args.steps is None:
        import yaml

        args.steps = yaml.safe_load((ROOT / "config" / "experiment-train.yaml").read_text())["pretrain_steps"]
    if args.demos < 1:
        raise SystemExit(f"--demos {args.demos}: at least one demonstration is needed")
    if args.first_seed < args.max_demo_seeds:
        raise SystemExit(f"--first-seed {args.first_seed} overlaps the demonstration seeds 0-{args.max_demo_seeds - 1}")
    folder = args.out / args.task
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "command.txt").write_text("python benchmarks/aloha_reference.py " + shlex.join(sys.argv[1:]) + "\n")
    demos = demonstrations(args, folder)
    model_path = train_bc(args, demos, folder)
    results = evaluate(args, model_path, folder)
    report = table(args, results, folder)
    (folder / "table.md").write_text(report + "\n")
    print(report, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
