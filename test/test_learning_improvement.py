"""Flow matching fits multimodal actions; advantage weighting moves it towards better ones."""
import numpy as np
import pytest
import torch

from aloe.learning.algorithm import (CriticData, action_level_advantages, advantage_weights, average_weights,
                                     effective_sample_fraction, fit_actor, fit_critic, sample_policy_actions)
from aloe.learning.config import CriticConfig, DataConfig, ModelConfig
from aloe.learning.data import Episode, chunk_transitions
from aloe.learning.networks import CriticEnsemble, FlowActor

CONFIG = ModelConfig(horizon=1, action_dim=1, feature_dim=4, actor_hidden=128, actor_blocks=2, ensemble_size=5, critic_hidden=64)


def bimodal(count, p_high, rng):
    """Actions near -1 or near +1, +1 with probability p_high."""
    high = rng.random(count) < p_high
    return np.where(high, 1.0, -1.0) + rng.normal(0, 0.05, count)


def fit_bc(actions, seed=0, steps=1500):
    torch.manual_seed(seed)
    actor = FlowActor(CONFIG)
    n = len(actions)
    fit_actor(actor, torch.ones(n, CONFIG.feature_dim), torch.tensor(actions, dtype=torch.float32).view(n, 1, 1),
              torch.ones(n, 1, dtype=torch.bool), torch.ones(n), steps, 256, 1e-3, torch.Generator().manual_seed(seed))
    return actor


def samples(actor, count=4000, seed=1):
    return actor.sample(torch.ones(count, CONFIG.feature_dim), torch.Generator().manual_seed(seed)).flatten().numpy()


def test_flow_matching_samples_both_modes_in_proportion_and_none_between():
    rng = np.random.default_rng(0)
    data = bimodal(4000, 0.7, rng)
    actor = fit_bc(data)
    drawn = samples(actor)
    # A given starting noise is the generator's draw: the chunk is a function of it alone.
    noise = torch.randn(4000, 1, 1, generator=torch.Generator().manual_seed(1))
    assert np.array_equal(actor.sample(torch.ones(4000, CONFIG.feature_dim), noise=noise).flatten().numpy(), drawn)
    # The split between modes is a boundary in noise space; across seeds it lands within
    # a few points of 0.7 (0.69..0.78 measured), far from an even split.
    assert abs(np.mean(drawn > 0) - 0.7) < 0.1
    assert np.mean(np.abs(drawn) < 0.5) < 0.05  # no mass between the modes
    # A Gaussian (MSE) regressor's best guess is the mean, between the modes: no mode at all.
    assert abs(data.mean()) < 0.5


@pytest.fixture(scope="module")
def bandit():
    """One-step episodes: the +1 mode succeeds (reward 1), the -1 mode fails (reward 0)."""
    rng = np.random.default_rng(2)
    actions = bimodal(3000, 0.5, rng)
    episodes = [Episode(np.zeros((1, 1)), [[a]], [False], "success" if a > 0 else "failure") for a in actions]
    transitions = chunk_transitions(episodes, 1, DataConfig(stride=1, gamma=0.9))
    reference = fit_bc(actions)
    features = torch.ones(len(transitions), CONFIG.feature_dim)
    torch.manual_seed(0)
    critic = CriticEnsemble(CONFIG)
    chunk_actions = torch.tensor(transitions.actions)
    data = CriticData(features, torch.arange(len(transitions)), torch.tensor(transitions.next_obs), chunk_actions,
                      torch.tensor(transitions.reward), torch.tensor(transitions.discount),
                      next_actions=torch.zeros(len(transitions), 1, 1, 1))
    fit_critic(critic, data, CriticConfig(lr=1e-3), 1500, 256, torch.Generator().manual_seed(0))
    policy_actions = sample_policy_actions(reference, features, 8, torch.Generator().manual_seed(3))
    advantages = action_level_advantages(critic, features, chunk_actions, policy_actions, CriticConfig())
    return actions, advantages


def improved(bandit_data, beta):
    actions, advantages = bandit_data
    n = len(actions)
    torch.manual_seed(0)
    actor = FlowActor(CONFIG)
    weights = advantage_weights(advantages, beta, max_weight=100.0)
    fit_actor(actor, torch.ones(n, CONFIG.feature_dim), torch.tensor(actions, dtype=torch.float32).view(n, 1, 1),
              torch.ones(n, 1, dtype=torch.bool), weights, 1500, 256, 1e-3, torch.Generator().manual_seed(0))
    return np.mean(samples(actor) > 0)


def test_critic_advantages_rank_the_better_mode_higher(bandit):
    actions, advantages = bandit
    assert advantages[torch.tensor(actions > 0)].mean() > 0.3
    assert advantages[torch.tensor(actions < 0)].mean() < -0.3


def test_advantage_weighting_moves_probability_to_the_better_mode(bandit):
    assert improved(bandit, beta=0.1) > 0.9


def test_very_large_beta_is_behaviour_cloning(bandit):
    assert abs(improved(bandit, beta=1e6) - 0.5) < 0.07


def test_weighted_likelihood_solves_kl_constrained_improvement_in_closed_form():
    """argmax_pi E_{a~pi_ref}[w(a) log pi(a)] with w = exp(A / beta) is pi_ref * exp(A / beta) / Z."""
    reference = np.array([0.1, 0.2, 0.3, 0.4])
    advantage = torch.tensor([1.0, 0.2, -0.3, 0.5])
    rng = np.random.default_rng(0)
    data = torch.tensor(rng.choice(4, size=200_000, p=reference))
    for beta, max_weight in ((0.5, 1e9), (0.5, 3.0), (1e6, 20.0)):
        weights = advantage_weights(advantage[data], beta, max_weight)
        logits = torch.zeros(4, requires_grad=True)
        optimizer = torch.optim.Adam([logits], lr=0.05)
        for _ in range(500):
            loss = -(weights * logits.log_softmax(0)[data]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        expected = reference * np.minimum(np.exp(advantage.numpy() / beta), max_weight)
        expected /= expected.sum()
        learned = logits.softmax(0).detach().numpy()
        assert 0.5 * np.abs(learned - expected).sum() < 0.01, (beta, learned, expected)


def test_normalised_weights_do_not_depend_on_the_scale_of_the_advantages():
    advantage = torch.tensor([0.3, -0.1, 0.05, -0.4, 0.2])
    weights = advantage_weights(advantage, beta=1.0, max_weight=20.0, normalize=True)
    for scale in (0.01, 7.0):
        assert torch.allclose(advantage_weights(scale * advantage, 1.0, 20.0, normalize=True), weights)
    # the sign survives: a chunk better than the policy keeps a weight above 1
    assert ((weights > 1) == (advantage > 0)).all()
    # without normalising, a larger spread sharpens the weights
    assert advantage_weights(7.0 * advantage, 1.0, 1e9).max() > advantage_weights(advantage, 1.0, 1e9).max() * 5


def test_effective_sample_fraction_spans_one_chunk_to_all():
    assert effective_sample_fraction(torch.ones(8)) == pytest.approx(1.0)
    assert effective_sample_fraction(torch.tensor([1.0, 0, 0, 0])) == pytest.approx(0.25)
    assert effective_sample_fraction(torch.tensor([1.0, 1.0, 0, 0])) == pytest.approx(0.5)


def test_weight_average_lands_nearer_the_optimum_than_the_last_noisy_step():
    """SGD on (theta - y)^2 with y ~ N(3, 1) each step: the last step's theta jitters around 3,
    the moving average of theta far less; with decay 0 the average is the last step."""
    last_errors, average_errors = [], []
    for seed in range(5):
        generator = torch.Generator().manual_seed(seed)
        online = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.zeros_(online.weight)
        average, copied = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
        optimizer = torch.optim.SGD(online.parameters(), lr=0.1)
        for step in range(3000):
            target = 3.0 + torch.randn(1, generator=generator)
            loss = (online.weight.sum() - target).pow(2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            average_weights(average, online, step, decay=0.995)
            average_weights(copied, online, step, decay=0.0)
        assert copied.weight.item() == online.weight.item()
        last_errors.append(abs(online.weight.item() - 3.0))
        average_errors.append(abs(average.weight.item() - 3.0))
    assert np.mean(average_errors) < np.mean(last_errors) / 3, (average_errors, last_errors)
