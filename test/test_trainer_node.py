"""The trainer node over real DDS: new bags in the folder become a checkpoint that the
running policy loads without a restart."""
from aloe.data.recording import aloe_typestore
from test_bag_dataset import write_bag
from test_bringup import bringup  # noqa: F401  (fixture)
from test_policy_node import TINY, checkpoints  # noqa: F401  (fixture)


def test_trainer_trains_a_round_from_new_bags_and_the_policy_swaps_it_in(bringup, tmp_path, checkpoints):  # noqa: F811
    first, _ = checkpoints
    bags = tmp_path / "bags"
    store = aloe_typestore()
    write_bag(store, bags / "ep1", dof=14)  # one bag: fewer than min_new_episodes, nothing happens yet
    params = tmp_path / "nodes.yaml"
    params.write_text(
        f"/**/policy:\n  ros__parameters:\n    use_sim_time: false\n    checkpoint: {first}\n"
        f"/**/trainer:\n  ros__parameters:\n    bags_dir: {bags}\n    out_dir: {tmp_path / 'rounds'}\n    algo: bc\n"
        f"    config: {TINY}\n    init_checkpoint: {first}\n    min_new_episodes: 2\n    check_every_s: 0.5\n"
    )
    graph = bringup("--namespace", "trn", "--only", "policy", "--only", "trainer", "--params", str(params))
    assert graph.wait_for(r"\[policy\].*ready", timeout_s=60) and graph.wait_for(r"\[trainer\].*ready"), graph.output()
    assert not graph.wait_for(r"round 1", timeout_s=2)
    write_bag(store, bags / "ep2", dof=14, outcome="failure")
    assert graph.wait_for(r"round 1: 2 new episodes, training bc", timeout_s=10), graph.output()
    wrote = graph.wait_for(r"round 1: wrote (\S+)", timeout_s=120)
    assert wrote, graph.output()
    assert (tmp_path / "rounds" / "round-001" / "model.safetensors").exists()
    runs = graph.wait_for(r"the policy runs round 1 now \(version (\S+)\)", timeout_s=60)
    assert runs and graph.wait_for(rf"\[policy\].*loaded .*round-001.*version {runs.group(1)}"), graph.output()
