"""`aloe experiment`: the post-training protocol, one resumable step after another.

Per task:
  1. demonstrations: the scripted operator drives, `aloe record` writes the bags;
  2. BC pre-training on the demonstrations that succeeded: the round-0 policy, evaluated
     on the rounds' conditions (on every condition when `rounds` is 0);
  3. R rounds: ALOE's newest policy drives through the graph (policy node, mux, recorder)
     and the scripted operator takes over after `takeover_after_s` or on the critic's
     request; then, at equal data (demonstrations and every round so far), ALOE and each
     baseline train from the round-0 policy and are evaluated (`aloe evaluate`) on the
     round's conditions; the last round on every condition.
A results folder collects each step's output, the CSVs, a markdown report and plots, the
exact config and the versions. `state.json` lists the finished steps: run the same command
again after an interruption and it continues with the first unfinished step. Its partial
output is cleared first, except where the step resumes: a recording or an evaluation
keeps its finished episodes and runs the rest, BC pre-training goes on from its last saved
state in `resume/`; the time and peak memory of such a step count its interrupted runs
too (saved in `state.json` every 30 s while it runs).
"""
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from aloe.experiment.process_memory import PeakTreeMemory
from aloe.learning.config import ALGORITHMS, ConfigError, TrainConfig, from_dict
from aloe.sim.tasks import TASKS


@dataclass
class EvaluationSettings:
    episodes: int = 50  # seeded episodes per task, condition and checkpoint
    first_seed: int = 100000  # evaluation seeds, apart from the demonstration and round seeds
    conditions: tuple = ("train", "unseen", "train+push:0.3", "train+push:0.6", "train+noise:0.5", "train+noise:1.0")
    every_round: tuple = ("train",)  # conditions evaluated after each round but the last
    workers: int = 2


@dataclass
class ExperimentConfig:
    tasks: tuple = tuple(TASKS)
    algorithms: tuple = ALGORITHMS
    demonstrations: int = 30  # per task, seeds 0..
    rounds: int = 2
    episodes_per_round: int = 20  # deployment episodes per task and round, seeds 1000 * round + k
    takeover_after_s: float = 10.0
    takeover_below: Optional[float] = None  # critic takeover threshold (pessimistic Q)
    real_time_factor: float = 0.0  # simulator pace in the recorded graphs (0: as fast as it can)
    train_config: str = ""  # TrainConfig YAML for every training (relative to the config file)
    # Per task, TrainConfig fields laid over train_config's for that task's trainings, e.g.
    # {sorting: {model: {language_state_query: true}}}: a setting that helps one task only.
    task_training: dict = field(default_factory=dict)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)


def load_config(path: Path) -> ExperimentConfig:
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    config = from_dict(ExperimentConfig, values, str(path))
    unknown = [t for t in config.tasks if t not in TASKS] + [a for a in config.algorithms if a not in ALGORITHMS]
    if unknown:
        raise ConfigError(f"{path}: unknown tasks or algorithms {unknown} (tasks: {', '.join(TASKS)}; algorithms: {', '.join(ALGORITHMS)})")
    if "aloe" not in config.algorithms:
        raise ConfigError(f"{path}: algorithms must include aloe (its policy drives the deployment rounds)")
    if config.demonstrations < 1 or config.episodes_per_round < 1 or config.evaluation.episodes < 1:
        raise ConfigError(f"{path}: demonstrations, episodes_per_round and evaluation.episodes must be at least 1")
    if config.rounds < 0:
        raise ConfigError(f"{path}: rounds must be 0 (demonstrations, BC and its evaluation only) or more, got {config.rounds}")
    if config.train_config:
        train_config = (path.parent / config.train_config).resolve()
        if not train_config.is_file():
            raise ConfigError(f"{path}: train_config {config.train_config} not found (relative to the config file)")
        config.train_config = str(train_config)
    for task, settings in training_settings(config).items():
        from_dict(TrainConfig, settings, f"{path}: task_training.{task}")  # refused here, not hours later by aloe train
    return config


def training_settings(config: ExperimentConfig) -> dict:
    """The TrainConfig fields of each task in `task_training`: train_config's, its own over them."""
    if not isinstance(config.task_training, dict):
        raise ConfigError(f"task_training: expected a mapping of tasks to training settings, got {config.task_training!r}")
    unknown = [t for t in config.task_training if t not in TASKS]
    if unknown:
        raise ConfigError(f"task_training: unknown tasks {unknown} (tasks: {', '.join(TASKS)})")
    base = (yaml.safe_load(Path(config.train_config).read_text()) or {}) if config.train_config else {}
    return {task: laid_over(base, settings or {}, f"task_training.{task}") for task, settings in config.task_training.items()}


def laid_over(base: dict, settings: dict, where: str) -> dict:
    if not isinstance(settings, dict):
        raise ConfigError(f"{where}: expected a mapping of training settings, got {settings!r}")
    merged = dict(base)
    for key, value in settings.items():
        nested = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = laid_over(base[key], value, f"{where}.{key}") if nested else value
    return merged


CLI = (sys.executable, "-m", "aloe.cli")  # every step is an `aloe` command in a process of its own


@dataclass
class Step:
    name: str
    output: Path  # cleared when the step runs again, unless it resumes
    command: list
    resumes: bool = False  # the command goes on from what an interrupted run left in `output`


class Experiment:
    def __init__(self, config: ExperimentConfig, out: Path, say=print, checkpoint_every_s: float = 30.0):
        self.config, self.out, self.say = config, out, say
        self.checkpoint_every_s = checkpoint_every_s  # how often a running step's cost so far is saved
        self.state_file = out / "state.json"

    # --- the protocol as steps ------------------------------------------------------------
    def checkpoint(self, task: str, round_: int, algo: str) -> Path:
        return self.out / task / "checkpoints" / f"round{round_}" / f"{algo}.safetensors"

    def bag_folders(self, task: str, upto_round: int) -> list:
        return [self.out / task / "bags" / "demonstrations"] + [self.out / task / "bags" / f"round{r}" for r in range(1, upto_round + 1)]

    def evaluation_dir(self, task: str, round_: int, algo: str) -> Path:
        return self.out / task / "evaluation" / f"round{round_}" / algo

    def task_train_config(self, task: str) -> Optional[Path]:
        """The training settings file of a task's trainings: its own beside the results where
        `task_training` names it (written with the provenance), else train_config's."""
        if task in self.config.task_training:
            return self.out / f"train-config-{task}.yaml"
        return Path(self.config.train_config) if self.config.train_config else None

    def steps(self) -> list:
        c, python = self.config, list(CLI)
        steps = []
        for task in c.tasks:
            train_file = self.task_train_config(task)
            train_options = ["--config", str(train_file)] if train_file else []
            demos = self.bag_folders(task, 0)[0]
            steps.append(Step(f"{task}: demonstrations", demos, python + [
                "record", "--task", task, "--episodes", str(c.demonstrations), "--out", str(demos), "--first-seed", "0",
                "--real-time-factor", str(c.real_time_factor), "--namespace", f"exp_{task}", "--resume"], resumes=True))
            bc = self.checkpoint(task, 0, "bc")
            steps.append(Step(f"{task}: BC pre-training", bc.parent, python + [
                "train", "--algo", "bc", "--bags", str(demos), "--out", str(bc), "--no-progress",
                "--resume-state", str(self.out / "resume" / f"{task}-bc-pretraining.pt"), *train_options,
                "--improve-steps", "0"], resumes=True))  # round 0 is the pre-trained policy, as the ladder measured it
            steps.append(self.evaluation_step(task, 0, "bc", bc, c.evaluation.conditions if c.rounds == 0 else c.evaluation.every_round))
            for r in range(1, c.rounds + 1):
                driver = self.checkpoint(task, r - 1, "aloe" if r > 1 else "bc")
                bags = self.bag_folders(task, r)[-1]
                deploy = python + ["record", "--task", task, "--episodes", str(c.episodes_per_round), "--out", str(bags),
                                   "--first-seed", str(1000 * r), "--policy", str(driver), "--takeover-after", str(c.takeover_after_s),
                                   "--real-time-factor", str(c.real_time_factor), "--namespace", f"exp_{task}", "--resume"]
                if c.takeover_below is not None:
                    deploy += ["--takeover-below", str(c.takeover_below)]
                steps.append(Step(f"{task}: round {r} deployment", bags, deploy, resumes=True))
                folders = [str(f) for f in self.bag_folders(task, r)]
                conditions = c.evaluation.conditions if r == c.rounds else c.evaluation.every_round
                for algo in c.algorithms:
                    out = self.checkpoint(task, r, algo)
                    steps.append(Step(f"{task}: round {r} {algo} training", out, python + [
                        "train", "--algo", algo, "--bags", *folders, "--init", str(self.checkpoint(task, 0, "bc")),
                        "--out", str(out), "--no-progress", *train_options]))
                    steps.append(self.evaluation_step(task, r, algo, out, conditions))
        return steps

    def evaluation_step(self, task: str, round_: int, algo: str, checkpoint: Path, conditions) -> Step:
        c, out = self.config.evaluation, self.evaluation_dir(task, round_, algo)
        return Step(f"{task}: round {round_} {algo} evaluation", out, [
            *CLI, "evaluate", str(checkpoint), "--task", task, "--episodes", str(c.episodes),
            "--first-seed", str(c.first_seed), "--conditions", ",".join(conditions), "--workers", str(c.workers),
            "--out", str(out), "--resume"], resumes=True)

    # --- running and resuming ------------------------------------------------------------------
    def finished(self) -> list:
        return self.read_state()["finished"]

    def read_state(self) -> dict:
        state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        return {"finished": [], "seconds": {}, "peak_memory_mb": {}, "attempts": {}, **state}

    def write_state(self, state: dict) -> None:
        temporary = self.state_file.with_suffix(".partial")
        temporary.write_text(json.dumps(state, indent=1))
        os.replace(temporary, self.state_file)  # a crash leaves the old state or the new, never half

    def earlier_attempts(self, step: Step) -> dict:
        """Time and peak memory that interrupted runs of a step that resumes already spent on
        it (its work goes on from theirs, so its cost is theirs plus this run's)."""
        none = {"seconds": 0.0, "peak_memory_mb": 0}
        return self.read_state()["attempts"].get(step.name, none) if step.resumes else none

    def record_attempt(self, name: str, seconds: float, peak_memory_mb: int) -> None:
        state = self.read_state()
        state["attempts"][name] = {"seconds": round(seconds, 1), "peak_memory_mb": peak_memory_mb}
        self.write_state(state)

    def mark_finished(self, name: str, seconds: float, peak_memory_mb: int) -> None:
        state = self.read_state()
        state["finished"].append(name)
        state["seconds"][name] = round(seconds, 1)
        state["peak_memory_mb"][name] = peak_memory_mb  # all the step's processes at once
        state["attempts"].pop(name, None)
        self.write_state(state)

    def run_step(self, step: Step, log: Path) -> tuple:
        """Run one step's command, its output to `log`: (exit code, seconds, peak MB), counting
        what interrupted runs of a step that resumes spent on it before. While it runs, what it
        has cost so far is saved every `checkpoint_every_s`, so a kill loses little of it."""
        earlier, started = self.earlier_attempts(step), time.monotonic()
        cost = lambda: (earlier["seconds"] + time.monotonic() - started,  # noqa: E731
                        max(earlier["peak_memory_mb"], round(memory.peak / 2**20)))
        with log.open("a" if step.resumes else "w") as handle, PeakTreeMemory() as memory:
            child = subprocess.Popen(step.command, stdout=handle, stderr=subprocess.STDOUT)
            try:
                while True:
                    try:
                        code = child.wait(timeout=self.checkpoint_every_s)
                        break
                    except subprocess.TimeoutExpired:
                        self.record_attempt(step.name, *cost())
            except BaseException:  # Ctrl-C: the step stops with us, as under subprocess.run
                child.kill()
                child.wait()
                self.record_attempt(step.name, *cost())
                raise
        return (code, *cost())

    def run(self) -> int:
        self.out.mkdir(parents=True, exist_ok=True)
        self.write_provenance()
        steps, finished = self.steps(), set(self.finished())
        left = [s for s in steps if s.name not in finished]
        if len(left) < len(steps):
            self.say(f"resuming: {len(steps) - len(left)} of {len(steps)} steps already finished")
        logs = self.out / "logs"
        logs.mkdir(exist_ok=True)
        for step in left:
            index = steps.index(step) + 1
            if step.output.exists() and not step.resumes:  # a step interrupted before: start it afresh
                shutil.rmtree(step.output) if step.output.is_dir() else step.output.unlink()
            log = logs / f"{index:03d}-{step.name.replace(':', '').replace(' ', '-')}.log"
            self.say(f"[{index}/{len(steps)}] {step.name} ...")
            code, seconds, peak_mb = self.run_step(step, log)
            if code != 0:
                tail = "\n".join(log.read_text().splitlines()[-15:])
                self.say(f"step '{step.name}' failed (exit {code}) after {seconds:.0f} s; its log {log} ends:\n{tail}")
                self.record_attempt(step.name, seconds, peak_mb)
                return 1
            self.mark_finished(step.name, seconds, peak_mb)
            self.say(f"[{index}/{len(steps)}] {step.name}: done in {seconds:.0f} s")
        from aloe.experiment.report import write_report

        report = write_report(self)
        self.say(f"report: {report}")
        return 0

    def report(self) -> Path:
        """The report of the steps finished so far, running nothing (a long run may go on beside it)."""
        from aloe.experiment.report import write_report

        if not self.state_file.exists():
            raise ConfigError(f"{self.out} holds no finished step of an experiment (no {self.state_file.name}); run it first")
        self.write_provenance()  # refuses a folder of another config
        return write_report(self)

    def write_provenance(self) -> None:
        """The exact config, the training settings it names and the versions of what ran
        (first run; a resumed run must have the same config and training settings), and
        each task's own training settings where `task_training` gives them."""
        config_file, train_file = self.out / "config.yaml", self.out / "train-config.yaml"
        config = json.loads(json.dumps(asdict(self.config)))  # tuples as lists, as YAML reads them back
        if self.config.train_config:
            config["train_config"] = train_file.name  # the copy beside it, so the folder runs again as it is
        train = yaml.safe_load(Path(self.config.train_config).read_text()) if self.config.train_config else {}
        if config_file.exists():
            anywhere = {"train_config": ""}  # the training settings count, not where their file lies
            if {**yaml.safe_load(config_file.read_text()), **anywhere} != {**config, **anywhere}:
                raise ConfigError(f"{self.out} holds an experiment with another config ({config_file}); "
                                  "use a new --out or the same config to resume")
            if (yaml.safe_load(train_file.read_text()) if train_file.exists() else {}) != train:
                raise ConfigError(f"{self.out} holds an experiment with another training config ({train_file}); "
                                  "use a new --out or the same config to resume")
        else:
            config_file.write_text(yaml.safe_dump(config, sort_keys=False))
            train_file.write_text(yaml.safe_dump(train, sort_keys=False))
            self.write_versions()
        for task, settings in training_settings(self.config).items():
            self.task_train_config(task).write_text(yaml.safe_dump(settings, sort_keys=False))

    def write_versions(self) -> None:
        from importlib.metadata import PackageNotFoundError, version

        versions = {"python": platform.python_version(), "machine": platform.platform(), "cpus": os.cpu_count()}
        for package in ("aloe", "torch", "numpy", "mujoco", "rosbags", "ros-kilted-rclpy"):
            try:
                versions[package] = version(package)
            except PackageNotFoundError:
                versions[package] = "not installed"
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
        versions["aloe commit"] = commit.stdout.strip() or "unknown"
        (self.out / "versions.yaml").write_text(yaml.safe_dump(versions, sort_keys=False))
