"""`aloe train`: train one algorithm on recorded or synthetic episodes and write a checkpoint."""
import sys
from pathlib import Path

import yaml

from aloe.learning.config import ALGORITHMS, ConfigError, TrainConfig, from_dict, to_dict


def add_arguments(parser) -> None:
    parser.add_argument("--algo", choices=ALGORITHMS, default="aloe", help="aloe (critic + advantage weights), bc, ibc (intervention-weighted BC) or mc (Monte-Carlo value baseline)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", type=int, metavar="EPISODES", help="train on this many synthetic episodes")
    source.add_argument("--bags", metavar="DIR", nargs="+", help="train on the episode bags in these folders (decoded once, cached in DIR/.aloe-cache)")
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


def load_config(args) -> TrainConfig:
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


def episodes_from_bags(directories, config: TrainConfig, say) -> list:
    from aloe.bag_dataset import load_bags
    from aloe.learning.data import DataError
    from aloe.recording import aloe_typestore

    store, episodes, skipped = aloe_typestore(), [], []
    for directory in map(Path, directories):
        found, left_out = load_bags(directory, store, config.model.image_size, directory / ".aloe-cache", say,
                                    tuple(config.model.head_crop))
        episodes, skipped = episodes + found, skipped + left_out
    if not episodes:
        raise DataError(f"no usable episode bags in {', '.join(map(str, directories))}" + (f" ({len(skipped)} skipped)" if skipped else ""))
    if skipped:
        say(f"{len(skipped)} bag{'s' if len(skipped) > 1 else ''} skipped, training on the other {len(episodes)}")
    return episodes


def run(args) -> int:
    from aloe.learning import synthetic
    from aloe.learning.checkpoint import load_checkpoint, new_version, save_checkpoint
    from aloe.learning.data import fingerprint
    from aloe.learning.resume import ResumeFile
    from aloe.learning.train import runtime_from_environment, train

    config = load_config(args)
    init = load_checkpoint(args.init) if args.init else None
    if init is not None:
        config.model = init.config.model  # the architecture comes with the weights
    runtime = runtime_from_environment()
    say = (lambda line: print(f"[aloe train] {line}", file=sys.stderr, flush=True)) if runtime.main else (lambda line: None)
    if args.bags:
        episodes = episodes_from_bags(args.bags, config, say)
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
