"""The critic against exact Q^pi on small chunked MDPs (`aloe.learning.exact_mdps`).

Each case trains the project's critic, with the default TD target, on behaviour data and
compares it with the target policy's exact values. The bounds sit between what the default
reaches and what a broken bootstrap gives (`benchmarks/critic_accuracy.py` prints both
over several seeds, docs/results.md has the table).
"""
import numpy as np
import pytest
import torch

from aloe.learning.algorithm import pessimistic
from aloe.learning.config import CriticConfig
from aloe.learning.exact_mdps import CASES, make_problem, measure, past_end_spread, train_critic

DEFAULT = CriticConfig()
# Mean absolute error bounds of Q (heads' mean) and of the pessimistic advantage, per case.
BOUNDS = {
    "far": (0.03, 0.03),
    "in-chunk": (0.03, 0.03),
    "stochastic": (0.03, 0.03),
    "time-cost": (0.03, 0.03),
    "continuous": (0.05, 0.05),
}


@pytest.fixture(scope="module")
def problems():
    return {name: make_problem(case, seed=0) for name, case in CASES.items()}


@pytest.fixture(scope="module")
def critics(problems):
    return {name: train_critic(problem, DEFAULT) for name, problem in problems.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_the_default_critic_recovers_q_and_advantages_of_the_target_policy(name, critics):
    errors = measure(critics[name], CASES[name], DEFAULT)
    q_bound, advantage_bound = BOUNDS[name]
    assert errors["q"] < q_bound and errors["advantage"] < advantage_bound, errors


@pytest.mark.parametrize("name", ["far", "continuous"])
def test_bootstrapping_from_the_data_next_chunk_evaluates_the_wrong_policy(name, problems):
    """SARSA-style targets (a' the chunk the data took next) estimate the behaviour policy."""
    errors = measure(train_critic(problems[name], DEFAULT, data_next_chunk=True), CASES[name], DEFAULT)
    assert errors["q"] > BOUNDS[name][0], errors


def test_the_value_of_a_chunk_that_ends_the_episode_ignores_the_steps_after_it(problems, critics):
    """Steps past an episode's end never run. The data hold them as the last command
    repeated; a critic that learns them as if they ran values the same finished chunk
    differently by what follows it."""
    case = CASES["in-chunk"]
    assert past_end_spread(critics["in-chunk"], case) < 0.03
    assert past_end_spread(train_critic(problems["in-chunk"], DEFAULT, learn_past_end=True), case) > 0.1


def test_the_pessimistic_advantage_is_lower_for_chunks_the_data_never_took(critics):
    """On the continuous case the data's steps lie in [-0.25, 0.25]: a chunk of steps of 0.6
    was never taken, and its pessimistic advantage falls below its mean advantage further
    than for chunks inside the data."""
    case = CASES["continuous"]
    critic = critics["continuous"]
    states = np.linspace(-0.6, 0.6, 7)[:, None]
    features = case.features(states)
    policy = torch.tensor(np.stack([case.pi_chunk(float(s)) for s in states[:, 0]])).unsqueeze(-1)
    inside = torch.full_like(policy, 0.2)
    outside = torch.full_like(policy, 0.6)

    def gap(chunks):  # mean A - pessimistic A
        with torch.no_grad():
            q, v = critic(features, chunks), critic(features, policy)
        mean_a = q.mean(0) - v.mean(0)
        pessimistic_a = pessimistic(q, DEFAULT) - pessimistic(v, DEFAULT)
        return mean_a - pessimistic_a

    assert torch.all(gap(outside) > 0)
    assert gap(outside).mean() > 3 * gap(inside).abs().mean()


def inside_and_outside(critic, case):
    """Every head's Q at the interior states on chunks the data took, and on chunks of steps
    six times larger than any."""
    features = case.features(np.eye(case.states)[1:-1])
    inside = torch.tensor(case.chunks())[torch.arange(len(features)) % len(case.chunks())].unsqueeze(-1)
    outside = torch.full_like(inside, 6.0)
    outside[::2] *= -1
    with torch.no_grad():
        return critic(features, inside), critic(features, outside)


def test_pessimism_and_spread_grow_far_from_the_data(critics):
    q_in, q_out = inside_and_outside(critics["stochastic"], CASES["stochastic"])
    for mode in (CriticConfig(pessimism="min"), CriticConfig(pessimism="mean_std", pessimism_lambda=1.0)):
        assert torch.all(pessimistic(q_out, mode) < q_out.mean(0))
    assert q_out.std(0).mean() > 3 * q_in.std(0).mean()


def test_random_priors_keep_the_values_and_spread_the_heads_wider_off_the_data(problems, critics):
    case = CASES["stochastic"]
    with_prior = train_critic(problems["stochastic"], DEFAULT, prior_scale=0.5)
    errors = measure(with_prior, case, DEFAULT)
    assert errors["q"] < BOUNDS["stochastic"][0] and errors["q_pessimistic"] < BOUNDS["stochastic"][0], errors
    (q_in, q_out), (prior_in, prior_out) = inside_and_outside(critics["stochastic"], case), inside_and_outside(with_prior, case)
    assert prior_in.std(0).mean() < 0.05  # the data still pull the heads together
    assert prior_out.std(0).mean() > 1.5 * q_out.std(0).mean()
