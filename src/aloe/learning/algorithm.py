"""Action-level off-policy evaluation and advantage-weighted improvement, top to bottom.

One post-training round, given chunk transitions from old policies and operators and the
current actor pi:

1. Policy evaluation (chunked TD). Every Q-head of the ensemble regresses
       y = sum_{i<H} gamma^i r_t+i + gamma^H * Qbar(s_t+H, a'),   a' ~ pi(. | s_t+H)
   where Qbar combines slowly Polyak-averaged target heads (`critic.target`: their mean
   by default, their pessimistic value, or each head its own). Because a' comes from the
   *current* actor and not from the data, Q estimates the value of the current policy
   from data it did not collect. Steps of a chunk past its episode's end never ran: each
   batch fills them with steps of other chunks, so Q cannot come to depend on them.
   pi does not change while it is evaluated, so a' is drawn once per round (a small pool
   per next state) and the critic then trains on cached features at full speed.
2. Advantages, pessimistic: with Qp the pessimistic value over the heads (min, or
   mean - lambda * std), V(s) = mean over M actions a_m ~ pi(s) of Qp(s, a_m) and
   A = Qp(s, a) - V(s) for the chunk a in the data (policy and operator chunks alike).
3. Improvement. Flow matching on every data chunk weighted by clip(exp(A / beta), w_max),
   A divided by its spread over the data first so that beta does not depend on its scale:
   the weighted maximum-likelihood form of the KL-constrained improvement
   pi* ∝ pi_ref * exp(A / beta). As beta grows the weights tend to 1: behaviour cloning.

Baselines reuse steps 3 with other weights: BC (all 1), intervention-weighted BC
(chunks with operator steps up-weighted) and a trajectory-level baseline (A = G_t - V(s)
with V regressed on Monte-Carlo returns G_t instead of an action-level critic).
"""
import copy
import math
from dataclasses import dataclass
from typing import Optional

import torch

from aloe.learning.config import CriticConfig, ImprovementConfig


# --- 1. policy evaluation ------------------------------------------------------------------
def pessimistic(q, config: CriticConfig):
    """Combine ensemble values (K, B) into one conservative value per sample (B,)."""
    if config.pessimism == "min":
        return q.min(dim=0).values
    return q.mean(dim=0) - config.pessimism_lambda * q.std(dim=0)


@dataclass
class CriticData:
    """What policy evaluation needs, as tensors (actions normalised)."""

    features: torch.Tensor  # (M, F) one row per observation
    obs: torch.Tensor  # (N,) row of s_t
    next_obs: torch.Tensor  # (N,) row of s_t+H, -1 where the chunk ends the episode
    actions: torch.Tensor  # (N, H, A) the chunk taken in the data
    reward: torch.Tensor  # (N,) discounted reward inside the chunk
    discount: torch.Tensor  # (N,) gamma^H, or 0 at the end of a terminal episode
    next_actions: torch.Tensor  # (N, P, H, A) a' drawn from the policy being evaluated at s_t+H
    executed: Optional[torch.Tensor] = None  # (N, H) False for steps past the episode's end

    def __len__(self):
        return len(self.obs)


def td_target(target_critic, data: CriticData, index, pick, config: CriticConfig):
    """Chunked TD target y for the transitions `index`, each with its `pick`-th sampled a':
    (B,) shared by the heads, or (K, B) with `config.target` "per_head"."""
    next_features = data.features[data.next_obs[index].clamp(min=0)]
    next_q = target_critic(next_features, data.next_actions[index, pick])  # (K, B)
    if config.target == "pessimistic":
        next_q = pessimistic(next_q, config)
    elif config.target == "mean":
        next_q = next_q.mean(dim=0)
    # discount is 0 past a success or failure, so nothing is bootstrapped there.
    return data.reward[index] + data.discount[index] * next_q


def fill_unexecuted(data: CriticData, index, generator=None):
    """The chunks `index`, their steps past the episode's end replaced by the same steps of
    random other chunks: those steps never ran, so the value must not learn them."""
    actions = data.actions[index]
    if data.executed is None:
        return actions
    others = torch.randint(len(data), (len(index),), generator=generator).to(actions.device)
    return torch.where(data.executed[index].unsqueeze(-1), actions, data.actions[others])


def polyak_update(target, online, tau: float) -> None:
    with torch.no_grad():
        for t, o in zip(target.parameters(), online.parameters()):
            t.lerp_(o, tau)


def average_weights(average, online, step: int, decay: float) -> None:
    """Exponential moving average of `online`'s weights into `average`. The decay warms up
    as (1 + step) / (10 + step), so the first steps' (or the initial checkpoint's) weights
    do not linger in the average; decay 0 makes `average` a copy of `online`."""
    polyak_update(average, online, 1.0 - min(decay, (1 + step) / (10 + step)))


def scheduled_lr(base: float, step: int, total: int, schedule: str) -> float:
    """The learning rate at `step` of `total`: `base` throughout ("constant"), or from `base`
    down to 0 along a half cosine ("cosine"). A function of the step alone, so a resumed run
    continues the same schedule."""
    if schedule == "constant":
        return base
    return 0.5 * base * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


def fit_critic(critic, data: CriticData, config: CriticConfig, steps: int, batch_size: int,
               generator=None, forward=None, on_step=None):
    """Train `critic` in place by chunked TD; `forward` may be a DDP wrapper of it."""
    forward = forward or critic
    target = copy.deepcopy(critic).requires_grad_(False)
    optimizer = torch.optim.Adam(critic.parameters(), lr=config.lr)
    samples = data.next_actions.shape[1]
    device = data.features.device
    for step in range(steps):
        index = torch.randint(len(data), (batch_size,), generator=generator).to(device)
        pick = torch.randint(samples, (batch_size,), generator=generator).to(device)
        with torch.no_grad():
            y = td_target(target, data, index, pick, config)
        q = forward(data.features[data.obs[index]], fill_unexecuted(data, index, generator))  # (K, B)
        loss = (q - y).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        polyak_update(target, critic, config.polyak)
        if on_step is not None:
            on_step(step, {"critic/td_loss": loss.item(), "critic/q_mean": q.mean().item(), "critic/target_mean": y.mean().item()})
    return target


def sample_policy_actions(actor, features, samples: int, generator=None, batch: int = 1024):
    """(N, samples, H, A) chunks from the actor at each row of `features`."""
    repeated = features.repeat_interleave(samples, dim=0)
    chunks = [actor.sample(repeated[i:i + batch], generator) for i in range(0, len(repeated), batch)]
    return torch.cat(chunks).view(len(features), samples, *chunks[0].shape[1:])


# --- 2. advantages -------------------------------------------------------------------------
@torch.no_grad()
def action_level_advantages(critic, features, actions, policy_actions, config: CriticConfig, batch: int = 1024):
    """A = Qbar(s, a) - mean_m Qbar(s, a_m) with a_m ~ pi(s): `policy_actions` is (N, M, H, A)."""
    advantages = []
    for i in range(0, len(features), batch):
        f, a, pa = features[i:i + batch], actions[i:i + batch], policy_actions[i:i + batch]
        q = pessimistic(critic(f, a), config)
        samples = pa.shape[1]
        v = pessimistic(critic(f.repeat_interleave(samples, 0), pa.flatten(0, 1)), config).view(-1, samples).mean(1)
        advantages.append(q - v)
    return torch.cat(advantages)


def fit_value(value, features, returns, steps: int, batch_size: int, lr: float, generator=None, forward=None, on_step=None):
    """The trajectory-level baseline's V(s): regression on Monte-Carlo returns."""
    forward = forward or value
    optimizer = torch.optim.Adam(value.parameters(), lr=lr)
    for step in range(steps):
        index = torch.randint(len(features), (batch_size,), generator=generator).to(features.device)
        loss = (forward(features[index]) - returns[index]).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_step is not None:
            on_step(step, {"value/mc_loss": loss.item()})


def advantage_weights(advantages, beta: float, max_weight: float, normalize: bool = False):
    """clip(exp(A / beta), max = max_weight), computed without overflow; with `normalize`, A
    is first divided by its standard deviation over the data (not centred: the sign of A,
    better or worse than the policy, is kept)."""
    if normalize and len(advantages) > 1:
        advantages = advantages / advantages.std().clamp(min=1e-8)
    return torch.exp(torch.clamp(advantages / beta, max=math.log(max_weight)))


def effective_sample_fraction(weights) -> float:
    """(sum w)^2 / (N sum w^2): 1 when all weights are equal, 1/N when one chunk has them all."""
    return (weights.sum() ** 2 / (len(weights) * weights.pow(2).sum())).item()


def intervention_weights(intervention, config: ImprovementConfig):
    """HG-DAgger-style: chunks the operator corrected count `intervention_weight` times."""
    weights = torch.ones(len(intervention))
    weights[intervention] = config.intervention_weight
    return weights


# --- 3. improvement ------------------------------------------------------------------------
def weighted_flow_matching(actor_forward, features, actions, mask, weights):
    """Mean of w_i * flow-matching loss_i over the batch."""
    return (weights * actor_forward(features, actions, mask)).mean()


def fit_actor(actor, features, actions, mask, weights, steps: int, batch_size: int, lr: float,
              generator=None, forward=None, on_step=None, ema_decay: float = 0.0):
    """Advantage-weighted (or plain, with unit weights) flow matching on fixed features.

    Weights are divided by their data mean so every algorithm trains at the same step size;
    the optimum pi ∝ pi_ref * w does not change under that scaling. With `ema_decay`, the
    actor ends with the moving average of its weights instead of the last step's.
    """
    forward = forward or actor
    weights = weights / weights.mean()
    optimizer = torch.optim.Adam(actor.parameters(), lr=lr)
    average = copy.deepcopy(actor).requires_grad_(False)
    for step in range(steps):
        index = torch.randint(len(actions), (batch_size,), generator=generator).to(actions.device)
        loss = weighted_flow_matching(forward, features[index], actions[index], mask[index], weights[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        average_weights(average, actor, step, ema_decay)
        if on_step is not None:
            on_step(step, {"actor/weighted_fm_loss": loss.item()})
    actor.load_state_dict(average.state_dict())
