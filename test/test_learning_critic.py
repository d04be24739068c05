"""The chunked-TD ensemble evaluates the *current* policy from another policy's data.

A seven-state corridor: the robot steps left or right (slipping the other way 20 % of the
time); reaching state 6 is success (+1), state 0 failure; every step costs 0.02. Actions
come in chunks of H = 2 steps and the detector checks the state at chunk boundaries.
The target policy pi picks chunks with fixed probabilities; the data comes from a
different behaviour policy (uniform steps). Q^pi is computed exactly by dynamic programming.
"""
import itertools

import numpy as np
import pytest
import torch

from aloe.learning.algorithm import CriticData, fit_critic, pessimistic
from aloe.learning.config import CriticConfig, DataConfig, ModelConfig
from aloe.learning.data import Episode, chunk_transitions
from aloe.learning.networks import CriticEnsemble

STATES, H, GAMMA, SLIP, COST = 7, 2, 0.9, 0.2, 0.02
CHUNKS = [np.array(c, dtype=np.float32) for c in itertools.product((-1.0, 1.0), repeat=H)]
PI = np.array([0.15, 0.15, 0.15, 0.55])  # LL, LR, RL, RR
DATA = DataConfig(stride=H, gamma=GAMMA, success_reward=1.0, time_cost=COST)
# |Q - Q^pi| over the 20 (state, chunk) pairs: finite data leaves a few hundredths of noise,
# while Q^pi and the behaviour policy's Q differ by 0.12 on average (up to 0.17).
TOLERANCE, MEAN_TOLERANCE = 0.075, 0.03


def step_outcomes(state, action):
    """[(probability, next state)] of one step."""
    move = [(1 - SLIP, action), (SLIP, -action)]
    return [(p, int(np.clip(state + m, 0, STATES - 1))) for p, m in move]


def chunk_outcomes(state, chunk):
    outcomes = [(1.0, state)]
    for action in chunk:
        outcomes = [(p * q, s2) for p, s in outcomes for q, s2 in step_outcomes(s, action)]
    return outcomes


def exact_q(policy_probs):
    """Q^pi(s, chunk) for the interior states, by iterating the chunk Bellman equation."""
    in_chunk_cost = -COST * sum(GAMMA**i for i in range(H))
    v = np.zeros(STATES)
    for _ in range(500):
        q = np.zeros((STATES, len(CHUNKS)))
        for s in range(1, STATES - 1):
            for c, chunk in enumerate(CHUNKS):
                for p, s2 in chunk_outcomes(s, chunk):
                    if s2 == STATES - 1:
                        q[s, c] += p * (in_chunk_cost + GAMMA ** (H - 1) * 1.0)
                    elif s2 == 0:
                        q[s, c] += p * in_chunk_cost
                    else:
                        q[s, c] += p * (in_chunk_cost + GAMMA**H * v[s2])
        v = q @ policy_probs
    return q


def behaviour_episodes(count, rng, max_steps=30):
    episodes = []
    for _ in range(count):
        state = int(rng.integers(1, STATES - 1))
        joints, actions, outcome = [], [], "truncated"
        for t in range(max_steps):
            action = float(rng.choice([-1.0, 1.0]))
            joints.append(np.eye(STATES)[state])
            actions.append([action])
            state = step_outcomes(state, action)[0 if rng.random() > SLIP else 1][1]
            if (t + 1) % H == 0 and state in (0, STATES - 1):
                outcome = "success" if state == STATES - 1 else "failure"
                break
        episodes.append(Episode(np.array(joints), np.array(actions), np.zeros(len(actions), bool), outcome))
    return episodes


def observation_features(episodes, transitions):
    """One-hot states; the state after an episode's last step is never needed (no bootstrap)."""
    return torch.tensor(np.array([episodes[e].joints[t] for e, t in transitions.observations]), dtype=torch.float32)


def train_critic(next_chunks, episodes, transitions, seed=0, prior_scale=0.0):
    torch.manual_seed(seed)
    config = ModelConfig(horizon=H, action_dim=1, feature_dim=STATES, ensemble_size=10, critic_hidden=64)
    critic = CriticEnsemble(config, prior_scale)
    data = CriticData(
        features=observation_features(episodes, transitions),
        obs=torch.tensor(transitions.obs),
        next_obs=torch.tensor(transitions.next_obs),
        actions=torch.tensor(transitions.actions),
        reward=torch.tensor(transitions.reward),
        discount=torch.tensor(transitions.discount),
        next_actions=next_chunks,
    )
    # 2500 steps with faster target tracking: as close to Q^pi as 4000 at polyak 0.01
    # (max error 0.036 against 0.048), in 60 % of the time.
    fit_critic(critic, data, CriticConfig(polyak=0.016), steps=2500, batch_size=256,
               generator=torch.Generator().manual_seed(seed))
    return critic


def estimated_q(critic, combine):
    features = torch.eye(STATES)[1:STATES - 1].repeat_interleave(len(CHUNKS), 0)
    chunks = torch.tensor(np.array(CHUNKS)).unsqueeze(-1).repeat(STATES - 2, 1, 1)
    with torch.no_grad():
        q = critic(features, chunks)
    return combine(q).view(STATES - 2, len(CHUNKS)).numpy()


@pytest.fixture(scope="module")
def corridor():
    rng = np.random.default_rng(0)
    episodes = behaviour_episodes(2000, rng)
    transitions = chunk_transitions(episodes, H, DATA)
    # a' ~ pi at every next state: a pool of 16 chunks each.
    picks = rng.choice(len(CHUNKS), size=(len(transitions), 16), p=PI)
    policy_chunks = torch.tensor(np.array(CHUNKS)[picks]).unsqueeze(-1)
    return episodes, transitions, policy_chunks


@pytest.fixture(scope="module")
def critic(corridor):
    episodes, transitions, policy_chunks = corridor
    return train_critic(policy_chunks, episodes, transitions)


def test_chunked_td_recovers_q_of_the_target_policy_from_behaviour_data(critic):
    truth = exact_q(PI)[1:STATES - 1]
    behaviour_truth = exact_q(np.full(len(CHUNKS), 0.25))[1:STATES - 1]
    assert np.abs(truth - behaviour_truth).mean() > 3 * MEAN_TOLERANCE  # the two policies' values differ
    pessimistic_q = estimated_q(critic, lambda q: pessimistic(q, CriticConfig()))
    error = np.abs(pessimistic_q - truth)
    assert error.max() < TOLERANCE and error.mean() < MEAN_TOLERANCE, (pessimistic_q - truth).round(3)


def test_bootstrapping_with_the_data_next_chunk_evaluates_the_wrong_policy(corridor):
    """SARSA-style targets (the next chunk the data took) estimate the behaviour policy."""
    episodes, transitions, _ = corridor
    rng = np.random.default_rng(1)
    data_next = transitions.next_transition
    uniform = torch.tensor(np.array(CHUNKS)[rng.integers(len(CHUNKS), size=len(transitions))]).unsqueeze(-1)
    next_chunks = torch.where(
        torch.tensor(data_next >= 0)[:, None, None], torch.tensor(transitions.actions[np.maximum(data_next, 0)]), uniform
    ).unsqueeze(1)
    wrong = train_critic(next_chunks, episodes, transitions)
    truth = exact_q(PI)[1:STATES - 1]
    estimate = estimated_q(wrong, lambda q: pessimistic(q, CriticConfig()))
    error = np.abs(estimate - truth)
    assert error.max() > TOLERANCE and error.mean() > 2 * MEAN_TOLERANCE, (estimate - truth).round(3)


def inside_and_outside(critic):
    """Every head's Q on chunks the data took, and on chunks six times larger than any."""
    features = torch.eye(STATES)[1:STATES - 1]
    inside = torch.tensor(np.array(CHUNKS))[torch.arange(len(features)) % len(CHUNKS)].unsqueeze(-1)
    outside = torch.full_like(inside, 6.0)
    outside[::2] *= -1
    with torch.no_grad():
        return critic(features, inside), critic(features, outside)


def test_pessimism_and_spread_grow_far_from_the_data(critic):
    q_in, q_out = inside_and_outside(critic)
    for mode in (CriticConfig(pessimism="min"), CriticConfig(pessimism="mean_std", pessimism_lambda=1.0)):
        assert torch.all(pessimistic(q_out, mode) < q_out.mean(0))
    assert q_out.std(0).mean() > 3 * q_in.std(0).mean()


def test_random_priors_keep_the_values_and_spread_the_heads_wider_off_the_data(corridor, critic):
    episodes, transitions, policy_chunks = corridor
    with_prior = train_critic(policy_chunks, episodes, transitions, prior_scale=0.5)
    truth = exact_q(PI)[1:STATES - 1]
    error = np.abs(estimated_q(with_prior, lambda q: pessimistic(q, CriticConfig())) - truth)
    assert error.max() < TOLERANCE and error.mean() < MEAN_TOLERANCE
    (q_in, q_out), (prior_in, prior_out) = inside_and_outside(critic), inside_and_outside(with_prior)
    assert prior_in.std(0).mean() < 0.05  # the data still pull the heads together
    assert prior_out.std(0).mean() > 1.5 * q_out.std(0).mean()  # 1.6x measured
