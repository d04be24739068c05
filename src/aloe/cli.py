"""The `aloe` command line: the top of the stack, over every layer (see aloe/__init__.py).
It imports no ROS at module level, so `aloe train` runs where only the learning stack is
installed."""
import argparse
import os
import shutil
import signal
import sys
from pathlib import Path
import time

import yaml

from aloe.graph.bringup import GraphError, ParameterFileError, check_parameters, load_graph, select_nodes, with_optional
from aloe.graph.runner import NamespaceLock, Runner, RunnerError, describe_exit, graph_environment, node_processes
from aloe.graph.transport import use_aloe_transport
from aloe.learning.config import ALGORITHMS, ConfigError, LearningError, TrainConfig, from_dict, to_dict
from aloe.sim import TASK_NAMES


class CliError(RuntimeError):
    """A problem the user can fix; printed as one line."""


def bringup(args) -> int:
    graph = load_graph(args.description)
    graph = select_nodes(graph, args.only) if args.only else with_optional(graph, getattr(args, "with_nodes", None) or [])
    namespace = args.namespace or graph.namespace
    parameter_files = [*graph.parameter_files, *(os.path.abspath(p) for p in args.params)]
    check_parameters(graph, namespace, parameter_files)

    env = graph_environment()
    os.environ.update(env)  # the monitor below joins the same graph as the nodes
    domain = env.get("ROS_DOMAIN_ID", "0")
    lock = NamespaceLock(namespace, domain)
    lock.acquire()

    from aloe.graph.monitor import GraphMonitor  # these two import rclpy: only once we really start
    from aloe.graph.topics import SERVICES

    monitor = GraphMonitor(namespace)
    runner = Runner(node_processes(graph, namespace, parameter_files), env=env)
    try:
        already = monitor.nodes_in_namespace()
        if already:
            raise RunnerError(
                f"namespace /{namespace.strip('/')} on ROS_DOMAIN_ID {domain} already has nodes "
                f"({', '.join(already)}): another aloe graph is running; pick another --namespace"
            )
        runner.say(
            f"starting {len(graph.nodes)} nodes in /{namespace.strip('/')} "
            f"(ROS_DOMAIN_ID={domain}, discovery {env['ROS_AUTOMATIC_DISCOVERY_RANGE']})"
        )
        signal.signal(signal.SIGINT, runner.request_stop)
        signal.signal(signal.SIGTERM, runner.request_stop)
        started = time.monotonic()
        runner.start()
        how, name, code = runner.wait(args.duration)
        elapsed = time.monotonic() - started
        executables = {node.executable for node in graph.nodes}
        seen = monitor.snapshot([s.name for s in SERVICES if s.server in executables])
        if how == "died":
            runner.say(f"node '{name}' {describe_exit(code)}: {runner.why(name)}; stopping the others")
        elif how == "finished":
            runner.say(f"node '{name}' finished its work; stopping the others")
        codes = runner.stop()
        report(runner, monitor, seen, elapsed, codes)
    finally:
        monitor.close()
        lock.release()
    if how == "died":
        return 1
    return 0 if all(c == 0 for c in codes.values()) else 1


def report(runner: Runner, monitor, seen: dict, elapsed: float, codes: dict) -> None:
    runner.say(f"ran {elapsed:.1f} s; nodes: " + ", ".join(f"{n} {describe_exit(c)}" for n, c in codes.items()))
    runner.say(f"services offered: {', '.join(seen['services']) or 'none'}")
    for name in sorted(seen["topics"]):
        count = monitor.counts[name]
        runner.say(f"topic {name} ({seen['topics'][name]}): {count} messages, {monitor.rate(name):.1f} Hz")


def record(args) -> int:
    """`aloe bringup` with the episode runner, the scripted operator and the recorder set up
    for N episodes per task; ends by itself and summarises the bags it wrote."""
    import tempfile

    import yaml

    from aloe.data.bag_dataset import bag_metadata, recorded_episodes
    from aloe.learning.data import DataError

    if args.episodes < 1:
        raise CliError(f"--episodes must be at least 1, got {args.episodes}")
    if args.policy and not Path(args.policy).is_file():
        raise CliError(f"--policy {args.policy}: no such checkpoint")
    out = Path(args.out).expanduser().resolve()
    tasks = args.task or list(TASK_NAMES)
    expected = args.episodes * len(tasks)
    done = set()
    if args.resume:
        # Finished episodes stay; one cut off mid-way is recorded again from its start.
        planned = {(task, args.first_seed + i) for task in tasks for i in range(args.episodes)}
        done, unfinished = recorded_episodes(out, planned, args.variant)
        for bag in unfinished:
            shutil.rmtree(bag)
            print(f"[aloe record] removed {bag.name}: its episode did not finish and is recorded again")
        print(f"[aloe record] resuming: {len(done)} of {expected} episodes already recorded in {out}")
        if len(done) == expected:
            return 0
    before = set(out.iterdir()) if out.is_dir() else set()
    settings = {
        "/**/episode_runner": {"tasks": tasks, "episodes_per_task": args.episodes,
                               "first_seed": args.first_seed, "variant": args.variant, "disturbances": args.disturbances,
                               "skip": ",".join(f"{task}/{seed}" for task, seed in sorted(done)), "exit_when_done": True},
        "/**/sim_robot": {"real_time_factor": args.real_time_factor, "scripted_operator": True},
        "/**/recorder": {"out_dir": str(out)},
    }
    if args.policy:
        # The policy drives; the scripted operator takes over on the critic's request or
        # once the episode has run --takeover-after seconds without success.
        settings["/**/policy"] = {"checkpoint": str(Path(args.policy).resolve())}
        if args.takeover_below is not None:
            settings["/**/policy"]["takeover_below"] = args.takeover_below
        settings["/**/sim_robot"].update(operator_mode="takeover", takeover_after_s=args.takeover_after)
        settings["/**/episode_runner"]["await_ready"] = "sim_robot,recorder,episode_manager,policy"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="aloe-record-", delete=False) as handle:
        yaml.safe_dump({node: {"ros__parameters": values} for node, values in settings.items()}, handle)
    try:
        code = bringup(argparse.Namespace(description=None, only=None, namespace=args.namespace, duration=None,
                                          params=[*args.params, handle.name]))
    finally:
        os.unlink(handle.name)
    bags = sorted(set(out.iterdir()) - before) if out.is_dir() else []
    outcomes = {}
    for bag in bags:
        try:
            outcome = bag_metadata(bag).get("outcome", "truncated")
        except DataError:
            outcome = "unfinished (run `aloe bag recover`)"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items())) or "none"
    print(f"[aloe record] {len(bags)} episode bag{'s' if len(bags) != 1 else ''} in {out}: {summary}")
    if code != 0 and outcomes.get("success", 0) + outcomes.get("failure", 0) + len(done) == expected:
        # Every episode ended and is in its bag: a node that would not stop once the work was
        # done (seen once: the policy node, killed after 10 s) does not undo the recording.
        print(f"[aloe record] the graph did not end cleanly (above), but all {expected} episodes are recorded", file=sys.stderr)
        return 0
    if len(bags) + len(done) < expected:
        # Stopped (Ctrl-C, SIGTERM, a node that died) before the episodes asked for: not a
        # finished recording, so that a script or `aloe experiment` does not take it for one.
        print(f"[aloe record] stopped after {len(bags) + len(done)} of {expected} episodes (--resume goes on from there)",
              file=sys.stderr)
        return code or 1
    return code


def split_conditions(text: str) -> list:
    """"train,unseen,train+push:0.5,drop:0.2" -> conditions; a disturbance list continues
    the condition before it (its items have no variant of their own)."""
    from aloe.experiment.evaluation import VARIANTS

    conditions = []
    for item in (part.strip() for part in text.replace(";", ",").split(",") if part.strip()):
        if item.split("+")[0] in VARIANTS or not conditions:
            conditions.append(item)
        else:
            conditions[-1] += "," + item
    return conditions


def add_train_arguments(parser) -> None:
    parser.add_argument("--algo", choices=ALGORITHMS, default="aloe", help="aloe (critic + advantage weights), bc, ibc (intervention-weighted BC) or mc (Monte-Carlo value baseline)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", type=int, metavar="EPISODES", help="train on this many synthetic episodes")
    source.add_argument("--bags", metavar="DIR", nargs="+", help="train on the episode bags in these folders (decoded once, cached in DIR/.aloe-cache)")
    source.add_argument("--lerobot", metavar="DIR", nargs="+", help="train on these LeRobotDataset v3 folders (50 fps; `aloe export` writes them)")
    parser.add_argument("--mapping", metavar="YAML", type=Path,
                        help="with --lerobot: which features are the cameras, state, action, intervention and reward "
                             "(fields of aloe.data.lerobot.DatasetMapping; default: the names `aloe export` writes)")
    parser.add_argument("--out", help="checkpoint to write (default: runs/train/<algo>-<time>-<id>/model.safetensors)")
    parser.add_argument("--init", metavar="CKPT", help="start from this checkpoint (else behaviour-clone first)")
    parser.add_argument("--config", metavar="YAML", help="training config file (fields of TrainConfig; see aloe/learning/config.py)")
    parser.add_argument("--pretrain-steps", type=int)
    parser.add_argument("--critic-steps", type=int)
    parser.add_argument("--improve-steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--beta", type=float, help="advantage temperature (aloe, mc)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    parser.add_argument("--resume-state", metavar="FILE",
                        help="where BC pre-training keeps its state and resumes from after an interruption "
                             "(default: next to --out, when --out is given)")
    parser.add_argument("--save-every", type=int, default=500, metavar="STEPS",
                        help="save the pre-training state after every this many steps (0: never)")


def train_config(args) -> TrainConfig:
    values = {}
    if args.config:
        try:
            values = yaml.safe_load(Path(args.config).read_text()) or {}
        except OSError as error:
            raise ConfigError(f"cannot read config {args.config}: {error.strerror}") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"config {args.config} is not valid YAML: {str(error).splitlines()[0]}") from None
    config = from_dict(TrainConfig, values, args.config or "config")
    values = to_dict(config)
    values["algo"] = args.algo
    for name in ("pretrain_steps", "critic_steps", "improve_steps", "batch_size", "seed"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.beta is not None:
        values["improve"]["beta"] = args.beta
    return from_dict(TrainConfig, values)


def train_policy(args) -> int:
    from aloe.data.bag_dataset import episodes_from_bags
    from aloe.learning import synthetic
    from aloe.learning.checkpoint import load_checkpoint, new_version, save_checkpoint
    from aloe.learning.data import fingerprint
    from aloe.learning.resume import ResumeFile
    from aloe.learning.train import runtime_from_environment, train

    if args.mapping and not args.lerobot:
        raise CliError("--mapping goes with --lerobot")
    config = train_config(args)
    init = load_checkpoint(args.init) if args.init else None
    if init is not None:
        config.model = init.config.model  # the architecture comes with the weights
    runtime = runtime_from_environment()
    say = (lambda line: print(f"[aloe train] {line}", file=sys.stderr, flush=True)) if runtime.main else (lambda line: None)
    if args.bags:
        episodes = episodes_from_bags(args.bags, config.model.image_size, config.model.head_crop, say)
    elif args.lerobot:
        from aloe.data.lerobot import DatasetMapping, read_dataset

        mapping = DatasetMapping.from_yaml(args.mapping)
        episodes = [episode for root in args.lerobot
                    for episode in read_dataset(root, config.model.image_size, config.model.head_crop, mapping, say)]
    else:
        episodes = synthetic.dataset(args.synthetic, seed=config.seed, image_size=config.model.image_size)
    say(f"{config.algo} on {len(episodes)} episodes ({sum(len(e) for e in episodes)} steps), device {runtime.device}, "
        f"{runtime.world_size} process{'es' if runtime.world_size > 1 else ''}")
    out = Path(args.out) if args.out else Path("runs/train") / new_version(config.algo) / "model.safetensors"
    resume_path = args.resume_state or (out.with_name(out.name + ".resume") if args.out else None)
    resume = None
    if resume_path and args.save_every > 0:
        identity = {"config": to_dict(config), "data": fingerprint(episodes)}
        resume = ResumeFile.for_rank(resume_path, args.save_every, identity, runtime.rank, runtime.world_size)
    checkpoint = train(config, episodes, init=init, log_dir=out.parent / "tensorboard", progress=not args.no_progress,
                       runtime=runtime, resume=resume)
    if runtime.main:
        save_checkpoint(checkpoint, out)
        say(f"wrote {out} (version {checkpoint.version})")
    if runtime.world_size > 1:
        import torch.distributed as dist

        dist.barrier()  # no rank drops its state before the checkpoint is written
    if resume is not None:
        resume.remove()
    if runtime.world_size > 1:
        dist.destroy_process_group()
    return 0


def export_bags(args) -> int:
    from aloe.data import lerobot

    say = lambda line: print(f"[aloe export] {line}", file=sys.stderr, flush=True)
    report = lerobot.export_bags(args.bags, args.out, say, progress=not args.no_progress)
    megabytes = report.bag_bytes / 2**20
    say(f"wrote {args.out}: {report.episodes} episodes, {report.frames} frames at {lerobot.FPS} fps, "
        f"{report.dataset_bytes / 2**20:.1f} MB from {megabytes:.1f} MB of bags in {report.seconds:.1f} s "
        f"({report.episodes / report.seconds * 60:.1f} episodes/min, {megabytes / report.seconds:.1f} MB/s)"
        + (f"; {len(report.skipped)} bag(s) skipped" if report.skipped else ""))
    return 0


def evaluate_checkpoints(args) -> int:
    from aloe.experiment.evaluation import (EpisodeJournal, EvaluationError, episode_key, evaluate, parse_condition, summarize,
                                 write_csv)
    from aloe.learning.checkpoint import CheckpointError, load_checkpoint

    if args.episodes < 1 or args.workers < 1:
        raise CliError("--episodes and --workers must be at least 1")
    if args.resume and not args.out:
        raise CliError("--resume goes on from the episodes recorded in --out: give --out")
    try:
        conditions = [parse_condition(c) for c in split_conditions(args.conditions)]
    except EvaluationError as error:
        raise CliError(str(error)) from None
    versions = {}
    for checkpoint in args.checkpoints:
        try:
            versions[checkpoint] = load_checkpoint(checkpoint).version
        except CheckpointError as error:
            raise CliError(str(error)) from None
    tasks = args.task or list(TASK_NAMES)
    seeds = range(args.first_seed, args.first_seed + args.episodes)
    # Every episode asked for, in the order an uninterrupted run gives them.
    keys = [(versions[c], task, condition.name, seed) for c in args.checkpoints for task in tasks for condition in conditions for seed in seeds]
    journal, earlier = None, {}
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        journal = EpisodeJournal(args.out / "episodes.journal.csv")
        if args.resume:
            try:
                recorded = journal.read()
            except (KeyError, ValueError) as error:
                raise CliError(f"{journal.path} is unreadable ({error}); run without --resume to start afresh") from None
            wanted = set(keys)
            earlier = {episode_key(r): r for r in recorded if episode_key(r) in wanted}
            print(f"[aloe evaluate] resuming: {len(earlier)} of {len(keys)} episodes already evaluated in {journal.path}",
                  file=sys.stderr)
        journal.start(list(earlier.values()))
    results = []
    for checkpoint in args.checkpoints:
        def progress(done, total, name=checkpoint):
            print(f"\r[aloe evaluate] {name}: {done}/{total} episodes", end="" if done < total else "\n", file=sys.stderr, flush=True)

        skip = {key[1:] for key in earlier if key[0] == versions[checkpoint]}
        results += evaluate(checkpoint, tasks, conditions, seeds, workers=args.workers, progress=progress, skip=skip,
                            on_result=journal.append if journal else None)
    by_key = {**earlier, **{episode_key(r): r for r in results}}
    results = [by_key[key] for key in keys]
    summaries = summarize(results)
    print(f"{'checkpoint':<34} {'task':<10} {'condition':<24} {'success (95 % CI)':<22} {'per min':>8} {'Q start':>8} {'return':>8} {'rank r':>7}  stages reached")
    for s in summaries:
        print(f"{s.checkpoint:<34} {s.task:<10} {s.condition:<24} {s.successes:>3}/{s.episodes:<3} "
              f"[{s.success_low:4.0%}, {s.success_high:4.0%}]  {s.throughput:8.2f} {s.q_start_mean:8.3f} {s.return_mean:8.3f} "
              f"{s.q_return_spearman:7.2f}  {s.stage_rates}")
    if args.out:
        write_csv(args.out / "episodes.csv", results)
        write_csv(args.out / "summary.csv", summaries)
        journal.remove()
        print(f"[aloe evaluate] wrote {args.out / 'episodes.csv'} and {args.out / 'summary.csv'}", file=sys.stderr)
    return 0


def run_experiment(args) -> int:
    from aloe.experiment.protocol import Experiment, load_config

    config = load_config(args.config)
    if args.task:
        config.tasks = tuple(args.task)
    out = args.out or Path("runs") / f"experiment-{args.config.stem}"
    experiment = Experiment(config, out.resolve(), say=lambda line: print(f"[aloe experiment] {line}", flush=True))
    if args.report:
        print(f"[aloe experiment] report of the finished steps: {experiment.report()}")
        return 0
    return experiment.run()


def play_bag(args) -> int:
    from aloe.data.replay import play

    if args.rate < 0 or args.q_every < 1:
        raise CliError("--rate must be >= 0 and --q-every >= 1")
    if not args.bag.is_dir():
        raise CliError(f"{args.bag} is not a bag directory")
    os.environ.update(graph_environment())  # replay stays on this machine unless told otherwise
    play(args.bag, args.rate, args.critic, args.q_every, max(args.delay, 0.0))
    return 0


def recover_bags(args) -> int:
    from aloe.data.recording import RecordingError, aloe_typestore, needs_recovery, recover

    broken = []
    for given in args.bags:
        if not given.is_dir():
            raise CliError(f"{given} is not a bag directory")
        candidates = [given] if needs_recovery(given) else sorted(p for p in given.iterdir() if p.is_dir())
        broken += [bag for bag in candidates if needs_recovery(bag)]
    if not broken:
        print("nothing to recover: every bag given has its metadata")
        return 0
    store, failed = aloe_typestore(), 0
    for bag in broken:
        try:
            print(f"{bag}: recovered {recover(bag, store)} messages")
        except RecordingError as error:
            print(f"{bag}: cannot recover: {error}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aloe", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("bringup", help="start the aloe graph (the nodes of config/bringup.yaml)")
    run.add_argument("--namespace", help="robot namespace (default: from the bringup description, 'aloe')")
    run.add_argument("--params", action="append", default=[], metavar="FILE", help="extra ROS 2 parameter file; later files win")
    run.add_argument("--only", action="append", metavar="NODE", help="start only this node (repeatable)")
    run.add_argument("--with", dest="with_nodes", action="append", metavar="NODE", help="also start this optional node (trainer)")
    run.add_argument("--duration", type=float, help="stop after this many seconds and report (default: until Ctrl-C)")
    run.add_argument("--description", help="bringup description YAML (default: config/bringup.yaml)")
    run.set_defaults(handler=bringup)

    rec = commands.add_parser("record", help="record scripted episodes through the graph, one bag each, and stop")
    rec.add_argument("--task", action="append", choices=TASK_NAMES, help="task (repeatable; default: all three)")
    rec.add_argument("--episodes", type=int, default=10, help="episodes per task (default 10)")
    rec.add_argument("--operator", choices=["scripted"], default="scripted", help="the operator: the simulator's scripted one")
    rec.add_argument("--policy", metavar="CKPT", help="the policy drives and the operator takes over (default: the operator drives)")
    rec.add_argument("--takeover-after", type=float, default=10.0, help="with --policy: seconds before the operator takes over (default 10)")
    rec.add_argument("--takeover-below", type=float, help="with --policy: also take over when the critic's Q falls below this")
    rec.add_argument("--out", default="bags", help="folder for the episode bags (default: bags)")
    rec.add_argument("--first-seed", type=int, default=0)
    rec.add_argument("--resume", action="store_true",
                     help="keep the finished episodes already in --out and record only the rest")
    rec.add_argument("--variant", choices=["train", "unseen"], default="train")
    rec.add_argument("--disturbances", default="", help="e.g. push:0.5,drop:0.2")
    rec.add_argument("--real-time-factor", type=float, default=1.0, help="simulator pace (0: as fast as it can)")
    rec.add_argument("--namespace", help="robot namespace (default: from the bringup description)")
    rec.add_argument("--params", action="append", default=[], metavar="FILE", help="extra ROS 2 parameter file")
    rec.set_defaults(handler=record)

    replay = commands.add_parser("play", help="republish a recorded episode bag on its topics (with /clock)")
    replay.add_argument("bag", type=Path, help="episode bag directory")
    replay.add_argument("--rate", type=float, default=1.0, help="speed factor (default 1: real time; 0: as fast as possible)")
    replay.add_argument("--critic", metavar="CKPT", help="also publish this critic's Q of every executed chunk")
    replay.add_argument("--q-every", type=int, default=10, help="steps between evaluated chunks (default 10)")
    replay.add_argument("--delay", type=float, default=1.0, help="seconds for subscribers to discover the player first (default 1)")
    replay.set_defaults(handler=play_bag)

    bag = commands.add_parser("bag", help="episode bags: recover bags whose recorder was killed")
    bag_commands = bag.add_subparsers(dest="bag_command", required=True)
    recover = bag_commands.add_parser("recover", help="complete bags left without metadata by a killed recorder")
    recover.add_argument("bags", nargs="+", type=Path, metavar="BAG", help="bag directories (or folders of bags)")
    recover.set_defaults(handler=recover_bags)

    export = commands.add_parser("export", help="write episode bags as a dataset of another format (LeRobotDataset v3)")
    export.add_argument("bags", nargs="+", type=Path, metavar="BAGS_DIR", help="folders of episode bags")
    export.add_argument("--format", choices=["lerobot"], default="lerobot", help="LeRobotDataset v3 (the only one so far)")
    export.add_argument("--out", type=Path, required=True, help="the dataset folder to create (must not exist or be empty)")
    export.add_argument("--no-progress", action="store_true", help="no progress bar")
    export.set_defaults(handler=export_bags)

    train = commands.add_parser("train", help="train a policy (aloe, bc, ibc or mc) and write a checkpoint")
    add_train_arguments(train)
    train.set_defaults(handler=train_policy)

    ev = commands.add_parser("evaluate", help="success, throughput, robustness, generalisation and critic quality of checkpoints")
    ev.add_argument("checkpoints", nargs="+", type=Path, metavar="CKPT")
    ev.add_argument("--task", action="append", choices=TASK_NAMES, help="task (repeatable; default: all three)")
    ev.add_argument("--episodes", type=int, default=50, help="seeded episodes per task and condition (default 50)")
    ev.add_argument("--first-seed", type=int, default=100000, help="evaluation seeds start here, apart from training seeds")
    ev.add_argument("--conditions", default="train,unseen,train+push:0.5,train+noise:1.0",
                    help="comma-separated variant[+disturbances]; disturbance lists continue their condition (default: %(default)s)")
    ev.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel simulator processes (default: one per core)")
    ev.add_argument("--out", type=Path, help="write episodes.csv and summary.csv here (and each episode as it ends)")
    ev.add_argument("--resume", action="store_true", help="go on from the episodes an interrupted run recorded in --out")
    ev.set_defaults(handler=evaluate_checkpoints)

    ex = commands.add_parser("experiment", help="demonstrations, BC, deployment rounds, ALOE and the baselines, evaluation, report")
    ex.add_argument("--config", type=Path, default=Path(__file__).resolve().parents[2] / "config" / "experiment.yaml",
                    help="the protocol (default: config/experiment.yaml; config/experiment-smoke.yaml runs in minutes)")
    ex.add_argument("--task", action="append", choices=TASK_NAMES, help="only this task (repeatable; default: the config's)")
    ex.add_argument("--out", type=Path, help="results folder (default: runs/experiment-<config name>); run again to resume")
    ex.add_argument("--report", action="store_true", help="only write the report of the steps finished so far (while a run goes on, or after it stopped)")
    ex.set_defaults(handler=run_experiment)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    use_aloe_transport()  # for this process's graph monitor or player and every node it starts
    try:
        return args.handler(args)
    except (CliError, GraphError, ParameterFileError, RunnerError, LearningError) as error:
        print(f"aloe: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
