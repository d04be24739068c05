"""`aloe experiment` end to end on the smoke protocol: demonstrations and a deployment
round through the real graph into bags, BC and the three post-training algorithms at equal
data, evaluation, the report with its plots; then an interrupted run resumes where it
stopped (an evaluation from its journal) and a different config is refused; a step that
resumes counts the time of its interrupted runs."""
import ast
import json
import sys
from pathlib import Path

import pytest
import yaml

from aloe.cli import main
from aloe.experiment.evaluation import read_episode_results
from aloe.experiment.protocol import Experiment, Step, load_config
from aloe.learning.config import ConfigError


def test_smoke_experiment_runs_reports_and_resumes(ros_domain, tmp_path, capsys):
    out = tmp_path / "exp"
    assert main(["experiment", "--config", "config/experiment-smoke.yaml", "--out", str(out)]) == 0
    state = json.loads((out / "state.json").read_text())
    assert len(state["finished"]) == 12  # demos, BC, its evaluation, deployment, 4 x (training, evaluation)
    for folder in ("demonstrations", "round1"):
        bags = [p for p in (out / "insertion" / "bags" / folder).iterdir() if p.is_dir() and not p.name.startswith(".")]
        assert len(bags) == 2 and all((bag / "metadata.yaml").exists() for bag in bags)
    for algo in ("aloe", "bc", "ibc", "mc"):
        assert (out / "insertion" / "checkpoints" / "round1" / f"{algo}.safetensors").exists()
    results = read_episode_results(out / "episodes.csv")
    assert len(results) == 4 * 3 * 1 + 1  # algorithms x conditions x episodes, and round 0's BC on train
    assert {r.condition for r in results} == {"train", "unseen", "train+push:0.5"}
    report = (out / "report.md").read_text()
    assert "| 1 | aloe | train |" in report and "| 1 | mc | train+push:0.5 |" in report and "Partial" not in report
    assert "| 0 | bc | train |" in report and "| 0 | aloe |" not in report
    for plot in ("success-per-round", "robustness", "calibration"):
        assert (out / "plots" / f"insertion-{plot}.png").stat().st_size > 1000
    assert list((out / "plots").glob("insertion-q-trajectory-*.png"))
    assert yaml.safe_load((out / "versions.yaml").read_text())["torch"].startswith("2.13.0")
    assert yaml.safe_load((out / "train-config.yaml").read_text()) == yaml.safe_load(Path("test/tiny_train.yaml").read_text())
    # the results' config names its training settings beside it, not by this machine's path
    assert yaml.safe_load((out / "config.yaml").read_text())["train_config"] == "train-config.yaml"
    assert load_config(out / "config.yaml").train_config == str((out / "train-config.yaml").resolve())
    # every step ran processes (the graph, a training): none held less than a Python process
    assert min(state["peak_memory_mb"].values()) > 20

    # Interrupted while mc trained again and its evaluation had begun: the report covers what
    # finished; resumed, the training starts afresh and the evaluation goes on from its
    # journal, where the episodes of the checkpoint replaced since count for nothing.
    state["finished"] = state["finished"][:-2]
    (out / "state.json").write_text(json.dumps(state))
    assert main(["experiment", "--config", "config/experiment-smoke.yaml", "--out", str(out), "--report"]) == 0
    report = (out / "report.md").read_text()
    assert "Partial: 10 of 12 steps finished.** Not run yet: insertion: round 1 mc training" in report
    assert "| 1 | bc | unseen |" in report and "| 1 | mc |" not in report
    assert len(read_episode_results(out / "episodes.csv")) == 3 * 3 * 1 + 1
    assert main(["experiment", "--config", "config/experiment-smoke.yaml", "--out", str(tmp_path / "none"), "--report"]) == 2
    assert "no finished step" in capsys.readouterr().err
    evaluation = out / "insertion" / "evaluation" / "round1" / "mc"
    old_results = read_episode_results(evaluation / "episodes.csv")
    (evaluation / "episodes.journal.csv").write_text("".join((evaluation / "episodes.csv").read_text().splitlines(True)[:2]))
    (evaluation / "episodes.csv").unlink()
    capsys.readouterr()
    assert main(["experiment", "--config", "config/experiment-smoke.yaml", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "resuming: 10 of 12 steps already finished" in said and said.count("...") == 2
    assert "resuming: 0 of 3 episodes already evaluated" in (out / "logs" / "012-insertion-round-1-mc-evaluation.log").read_text()
    new_results = read_episode_results(evaluation / "episodes.csv")
    assert len(new_results) == 3 and {r.checkpoint for r in new_results}.isdisjoint({r.checkpoint for r in old_results})

    other = tmp_path / "other.yaml"
    smoke = Path("config/experiment-smoke.yaml").read_text()
    other.write_text(smoke.replace("episodes_per_round: 2", "episodes_per_round: 3")
                     .replace("../test/tiny_train.yaml", str(Path("test/tiny_train.yaml").resolve())))
    assert main(["experiment", "--config", str(other), "--out", str(out)]) == 2
    assert "another config" in capsys.readouterr().err

    # The same experiment config naming training settings that changed since: refused too.
    train = tmp_path / "train.yaml"
    train.write_text(Path("test/tiny_train.yaml").read_text() + "seed: 7\n")
    other.write_text(smoke.replace("../test/tiny_train.yaml", str(train)))
    assert main(["experiment", "--config", str(other), "--out", str(out)]) == 2
    assert "another training config" in capsys.readouterr().err


class TwoSteps(Experiment):
    """The smoke config's provenance with two short steps of our own: one that resumes, one
    that starts afresh. Each prints what state.json says of it while it runs."""

    def steps(self):
        show = ("import json, sys, time; time.sleep(1.0); "
                "print(json.load(open(sys.argv[1]))['attempts'].get(sys.argv[2]))")
        return [Step(name, self.out / name, [sys.executable, "-c", show, str(self.state_file), name], resumes=resumes)
                for name, resumes in (("resuming", True), ("afresh", False))]


def test_a_step_that_resumes_counts_the_time_of_its_interrupted_runs(tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    earlier = {"seconds": 500.0, "peak_memory_mb": 99999}  # what runs killed before spent on each
    (out / "state.json").write_text(json.dumps({"finished": [], "seconds": {}, "peak_memory_mb": {},
                                                "attempts": {"resuming": earlier, "afresh": earlier}}))
    assert TwoSteps(load_config(Path("config/experiment-smoke.yaml")), out, say=lambda line: None, checkpoint_every_s=0.2).run() == 0
    state = json.loads((out / "state.json").read_text())
    assert state["finished"] == ["resuming", "afresh"] and state["attempts"] == {}
    assert 501 <= state["seconds"]["resuming"] < 600 and state["peak_memory_mb"]["resuming"] == 99999
    assert state["seconds"]["afresh"] < 100 and 0 < state["peak_memory_mb"]["afresh"] < 99999
    # While running, each step's cost so far was on disk: a kill then would have lost < 0.2 s.
    seen = {name: ast.literal_eval((out / "logs" / log).read_text().strip())
            for name, log in (("resuming", "001-resuming.log"), ("afresh", "002-afresh.log"))}
    assert seen["resuming"]["seconds"] > 500 and seen["resuming"]["peak_memory_mb"] == 99999
    assert 0 < seen["afresh"]["seconds"] < 100


def test_rounds_0_is_demonstrations_bc_and_its_evaluation_on_every_condition(tmp_path):
    config_file = tmp_path / "round0.yaml"
    config_file.write_text(Path("config/experiment-smoke.yaml").read_text().replace("rounds: 1", "rounds: 0")
                           .replace("../test/tiny_train.yaml", str(Path("test/tiny_train.yaml").resolve())))
    steps = Experiment(load_config(config_file), tmp_path / "exp").steps()
    assert [s.name for s in steps] == ["insertion: demonstrations", "insertion: BC pre-training", "insertion: round 0 bc evaluation"]
    evaluate = steps[-1].command
    assert evaluate[evaluate.index("--conditions") + 1] == "train,unseen,train+push:0.5"
    assert evaluate[evaluate.index("evaluate") + 1].endswith("round0/bc.safetensors")
    config_file.write_text(config_file.read_text().replace("rounds: 0", "rounds: -1"))
    with pytest.raises(ConfigError, match="rounds must be 0"):
        load_config(config_file)


def test_task_training_gives_one_task_its_own_training_settings_over_the_shared_ones(tmp_path):
    config_file = tmp_path / "tasks.yaml"
    train = yaml.safe_load(Path("test/tiny_train.yaml").read_text())
    config_file.write_text(Path("config/experiment-smoke.yaml").read_text()
                           .replace("tasks: [insertion]", "tasks: [insertion, sorting]")
                           .replace("../test/tiny_train.yaml", str(Path("test/tiny_train.yaml").resolve()))
                           + "task_training:\n  sorting: {model: {language_state_query: true}, seed: 3}\n")
    experiment = Experiment(load_config(config_file), tmp_path / "exp")
    (tmp_path / "exp").mkdir()
    experiment.write_provenance()
    own = tmp_path / "exp" / "train-config-sorting.yaml"
    for step in experiment.steps():
        if " training" in step.name or "pre-training" in step.name:
            given = step.command[step.command.index("--config") + 1]
            assert given == (str(own) if step.name.startswith("sorting") else str(Path("test/tiny_train.yaml").resolve())), step.name
    sorting = yaml.safe_load(own.read_text())
    # sorting's own settings lie over the shared ones; the rest of the shared ones stay
    assert sorting["model"] == {**train.get("model", {}), "language_state_query": True} and sorting["seed"] == 3
    assert {k: v for k, v in sorting.items() if k not in ("model", "seed")} == {k: v for k, v in train.items() if k not in ("model", "seed")}
    # a resumed run reads its config from the results folder and lays the same settings over
    resumed = Experiment(load_config(tmp_path / "exp" / "config.yaml"), tmp_path / "exp")
    resumed.write_provenance()
    assert yaml.safe_load(own.read_text()) == sorting

    for bad, message in (("  drawers: {seed: 1}\n", r"unknown tasks \['drawers'\]"),
                         ("  sorting: {model: {language_query: true}}\n", r"task_training.sorting.model: unknown key language_query")):
        config_file.write_text(config_file.read_text().split("task_training:\n")[0] + "task_training:\n" + bad)
        with pytest.raises(ConfigError, match=message):
            load_config(config_file)
