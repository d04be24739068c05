"""Episodes become chunk transitions with the right rewards, masks and bootstrap discounts."""
import numpy as np
import pytest

from aloe.learning.config import ConfigError, DataConfig, TrainConfig, from_dict
from aloe.learning.data import DataError, Episode, Normalizer, chunk_transitions, fingerprint, stages_reached


def make(length, outcome, operator_steps=(), action_dim=2):
    operator = np.zeros(length, bool)
    operator[list(operator_steps)] = True
    actions = np.arange(length * action_dim, dtype=np.float32).reshape(length, action_dim)
    return Episode(np.zeros((length, 3)), actions, operator, outcome)


def test_full_and_partial_chunks_of_a_successful_episode():
    config = DataConfig(stride=2, gamma=0.5, success_reward=1.0, time_cost=0.1)
    t = chunk_transitions([make(7, "success", operator_steps=[5])], horizon=4, config=config)
    assert list(t.observations[t.obs][:, 1]) == [0, 2, 4, 6]
    # Starts 0 and 2 bootstrap from s_4 and s_6; 4 and 6 run past the end: no bootstrap.
    assert list(t.discount) == [0.5**4, 0.5**4, 0.0, 0.0]
    assert list(t.observations[t.next_obs[:2]][:, 1]) == [4, 6] and list(t.next_obs[2:]) == [-1, -1]
    assert t.mask[2].tolist() == [True, True, True, False] and t.mask[3].tolist() == [True, False, False, False]
    # Padding repeats the last command (the robot holds).
    assert np.array_equal(t.actions[3], np.repeat(t.actions[3][:1], 4, axis=0))
    cost = -0.1 * (1 + 0.5 + 0.25 + 0.125)
    assert t.reward[0] == pytest.approx(cost)
    assert t.reward[2] == pytest.approx(-0.1 * (1 + 0.5) + 0.25 * (1.0 - 0.1))  # steps 4, 5, 6; success at 6
    assert t.reward[3] == pytest.approx(1.0 - 0.1)
    assert t.intervention.tolist() == [False, True, True, False]
    assert t.next_transition.tolist() == [2, 3, -1, -1]
    assert t.mc_return[3] == pytest.approx(0.9)


def test_truncated_episode_drops_chunks_without_an_observed_next_state():
    t = chunk_transitions([make(7, "truncated")], horizon=4, config=DataConfig(stride=1, gamma=0.9))
    # s_t+4 must exist: t + 4 <= 6.
    assert list(t.observations[t.obs][:, 1]) == [0, 1, 2]
    assert np.all(t.discount == pytest.approx(0.9**4)) and np.all(t.reward == 0.0)


def test_failure_is_terminal_without_reward():
    t = chunk_transitions([make(3, "failure")], horizon=4, config=DataConfig(stride=1, gamma=0.9))
    assert len(t) == 3 and np.all(t.discount == 0.0) and np.all(t.reward == 0.0)


def test_bad_episodes_are_refused_with_their_name():
    with pytest.raises(DataError, match="ep7: outcome 'won'"):
        Episode(np.zeros((2, 1)), np.zeros((2, 1)), np.zeros(2, bool), "won", episode_id="ep7")
    with pytest.raises(DataError, match="NaN"):
        Episode(np.zeros((2, 1)), [[0.0], [np.nan]], np.zeros(2, bool), "success")
    with pytest.raises(DataError, match="differ in length"):
        Episode(np.zeros((3, 1)), np.zeros((2, 1)), np.zeros(2, bool), "success")


def test_observation_uses_the_newest_image_at_or_before_the_step():
    images = np.zeros((3, 1, 2, 2, 3), np.uint8)
    episode = Episode(np.zeros((10, 1)), np.zeros((10, 1)), np.zeros(10, bool), "success", images=images, image_steps=[0, 4, 8])
    assert [episode.image_index(t) for t in (0, 3, 4, 7, 9)] == [0, 0, 1, 1, 2]


def test_normalizer_and_fingerprint():
    episodes = [make(5, "success"), make(6, "failure")]
    normalizer = Normalizer.fit(episodes)
    actions = np.concatenate([e.actions for e in episodes])
    assert np.allclose(normalizer.actions(actions).mean(0), 0, atol=1e-5)
    assert np.allclose(normalizer.unnormalize_actions(normalizer.actions(actions)), actions, atol=1e-4)
    assert Normalizer.from_dict(normalizer.to_dict()).to_dict() == normalizer.to_dict()
    assert fingerprint(episodes) == fingerprint([make(5, "success"), make(6, "failure")])
    assert fingerprint(episodes) != fingerprint([make(5, "success"), make(6, "success")])


def test_takeover_cost_falls_on_the_policys_last_step_before_each_takeover():
    # Policy 0-1, operator 2-3, policy 4, operator 5-6 (a second takeover), success at 6.
    episode = make(7, "success", operator_steps=[2, 3, 5, 6])
    config = DataConfig(stride=1, gamma=0.5, success_reward=1.0, takeover_cost=0.25)
    assert episode.rewards(config).tolist() == [0.0, -0.25, 0.0, 0.0, -0.25, 0.0, 1.0]
    t = chunk_transitions([episode], horizon=2, config=config)
    assert t.reward.tolist() == [-0.125, -0.25, 0.0, -0.125, -0.25, 0.5, 1.0]
    # A demonstration, driven by the operator from its first step, pays nothing.
    assert np.all(make(4, "success", operator_steps=range(4)).rewards(config)[:-1] == 0.0)
    with pytest.raises(ConfigError, match="takeover_cost must be >= 0"):
        from_dict(TrainConfig, {"data": {"takeover_cost": -1.0}})


def test_stages_count_in_the_tasks_order_and_stay_counted():
    # A drawer: the lid starts closed (third stage "done"), opens, the cube goes in, the lid
    # closes again (the first stage no longer "done", but it was reached).
    done = [[0, 0, 1], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1]]
    assert stages_reached(done).tolist() == [0, 1, 2, 2, 3]
    assert stages_reached([[0, 1], [1, 0]]).tolist() == [0, 1]  # the second counts only after the first


def test_the_stages_reward_pays_a_share_per_stage_and_the_rest_at_success():
    config = DataConfig(reward="stages", success_reward=1.0)
    progress = [0, 0, 1 / 3, 1 / 3, 2 / 3, 2 / 3]
    failed = Episode(np.zeros((6, 3)), np.zeros((6, 2)), np.zeros(6, bool), "failure", stage_progress=progress)
    assert failed.rewards(config) == pytest.approx([0, 0, 1 / 3, 0, 1 / 3, 0])
    succeeded = Episode(np.zeros((6, 3)), np.zeros((6, 2)), np.zeros(6, bool), "success", stage_progress=progress)
    assert succeeded.rewards(config) == pytest.approx([0, 0, 1 / 3, 0, 1 / 3, 1 / 3])  # the same total as sparse success
    assert succeeded.rewards(DataConfig()).tolist() == [0, 0, 0, 0, 0, 1.0]  # the default stays sparse
    with pytest.raises(DataError, match="no task stages recorded"):
        make(6, "success").rewards(config)
    with pytest.raises(ConfigError, match="data.reward must be one of success, stages"):
        from_dict(TrainConfig, {"data": {"reward": "dense"}})
