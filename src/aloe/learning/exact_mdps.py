"""Small chunked MDPs whose Q^pi is known exactly: the yardstick for the critic.

Each case has a behaviour policy that makes the data and a target policy pi that the
critic must evaluate from those data, as aloe evaluates the current actor from old
policies' and operators' episodes. The data go through the project's own path
(`Episode` -> `chunk_transitions` -> `CriticData` -> `fit_critic` on a `CriticEnsemble`),
with the success reward and time cost of `Episode.rewards`, so what this measures is the
critic the robot gets. `measure` returns the mean absolute error of Q against Q^pi over
every (state, chunk) pair, chunks the data rarely take included, and of the pessimistic
advantage A = Q - V that the improvement uses against the exact A^pi.

Cases (`CASES`):
  far          the data start on the left and mostly step left, pi mostly goes right:
               the states pi reaches are the ones the data rarely visit
  in-chunk     the detector ends an episode at the step it succeeds or fails, inside a chunk
  stochastic   each step slips the other way 20 % of the time
  time-cost    every step costs 0.02, so a faster success is worth more
  continuous   a point on a line with continuous steps and a deterministic pi; Q^pi by rollout
"""
import itertools
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from aloe.learning.algorithm import CriticData, fit_critic, pessimistic
from aloe.learning.config import CriticConfig, DataConfig, ModelConfig
from aloe.learning.data import Episode, chunk_transitions
from aloe.learning.networks import CriticEnsemble

LEFT, RIGHT = -1.0, 1.0


@dataclass
class Corridor:
    """States 0..n-1 on a line, one-hot observed. A step moves by its action (-1 or +1),
    slipping the other way with probability `slip`. Reaching n-1 is success, 0 failure;
    with `every_step` the episode ends at the step that gets there, else only when a chunk
    boundary finds it there. pi picks whole chunks with fixed probabilities (`target`, in
    the order of `chunks()`); the behaviour steps right with probability `behaviour_right`
    from a start drawn uniformly in states first_start..last_start (negative: from the end)."""

    name: str
    target: tuple
    behaviour_right: float = 0.5
    states: int = 7
    horizon: int = 2
    gamma: float = 0.9
    slip: float = 0.0
    time_cost: float = 0.0
    every_step: bool = False
    max_steps: int = 30
    first_start: int = 1  # episodes start uniformly in states first_start..last_start
    last_start: int = -2

    @property
    def data_config(self) -> DataConfig:
        return DataConfig(stride=self.horizon, gamma=self.gamma, success_reward=1.0, time_cost=self.time_cost)

    def chunks(self) -> np.ndarray:
        return np.array(list(itertools.product((LEFT, RIGHT), repeat=self.horizon)), dtype=np.float32)

    def features(self, joints: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(joints, dtype=torch.float32)

    def _moves(self, state: int, action: float):
        step = int(action)
        return [(1 - self.slip, step), (self.slip, -step)] if self.slip else [(1.0, step)]

    def _terminal(self, state: int) -> bool:
        return state in (0, self.states - 1)

    def chunk_outcomes(self, state: int, chunk):
        """[(probability, discounted reward inside the chunk, state after it or None if the episode ended)]."""
        paths = [(1.0, 0.0, state, False)]  # probability, reward so far, state, ended
        for i, action in enumerate(chunk):
            grown = []
            for p, reward, s, ended in paths:
                if ended:
                    grown.append((p, reward, s, True))
                    continue
                for q, move in self._moves(s, action):
                    s2 = int(np.clip(s + move, 0, self.states - 1))
                    r = reward - self.time_cost * self.gamma**i
                    ends = self._terminal(s2) and (self.every_step or i == len(chunk) - 1)
                    if ends and s2 == self.states - 1:
                        r += self.gamma**i
                    grown.append((p * q, r, s2, ends))
            paths = grown
        return [(p, r, None if ended else s) for p, r, s, ended in paths]

    def exact_q(self) -> np.ndarray:
        """Q^pi (interior states, chunks) by iterating the chunked Bellman equation."""
        chunks, pi = self.chunks(), np.asarray(self.target)
        outcomes = {(s, c): self.chunk_outcomes(s, chunk) for s in range(self.states) for c, chunk in enumerate(chunks)}
        v = np.zeros(self.states)
        for _ in range(1000):
            q = np.array([[sum(p * (r + (0.0 if s2 is None else self.gamma**self.horizon * v[s2]))
                               for p, r, s2 in outcomes[s, c]) for c in range(len(chunks))] for s in range(self.states)])
            v = q @ pi
        return q[1:-1]

    def episodes(self, rng, count: int) -> list:
        result = []
        for _ in range(count):
            last = self.last_start if self.last_start >= 0 else self.states + self.last_start
            state = int(rng.integers(self.first_start, last + 1))
            joints, actions, outcome = [], [], "truncated"
            for t in range(self.max_steps):
                action = RIGHT if rng.random() < self.behaviour_right else LEFT
                joints.append(np.eye(self.states)[state])
                actions.append([action])
                slipped = self.slip and rng.random() < self.slip
                state = int(np.clip(state + (-action if slipped else action), 0, self.states - 1))
                if self._terminal(state) and (self.every_step or (t + 1) % self.horizon == 0):
                    outcome = "success" if state == self.states - 1 else "failure"
                    break
            result.append(Episode(np.array(joints), np.array(actions), np.zeros(len(actions), bool), outcome))
        return result

    def policy_chunks(self, rng, next_joints: np.ndarray, samples: int) -> torch.Tensor:
        """a' ~ pi at each next state: (N, samples, H, 1)."""
        picks = rng.choice(len(self.target), size=(len(next_joints), samples), p=np.asarray(self.target))
        return torch.tensor(self.chunks()[picks]).unsqueeze(-1)

    def queries(self):
        """Every interior state with every chunk: features (Q, F), chunks (Q, H, 1), exact
        Q^pi (Q,), and for V the policy's chunks at each state with their probabilities."""
        chunks, interior = self.chunks(), np.eye(self.states)[1:-1]
        features = self.features(np.repeat(interior, len(chunks), axis=0))
        query_chunks = torch.tensor(np.tile(chunks, (len(interior), 1))).unsqueeze(-1)
        q = self.exact_q()
        pi = np.asarray(self.target)
        return features, query_chunks, q.reshape(-1), (q @ pi).repeat(len(chunks)), len(chunks), torch.tensor(pi, dtype=torch.float32)


@dataclass
class PointOnALine:
    """A point at s in [-1, 1]; each step moves it by its action, any value in [-0.25, 0.25].
    Reaching s >= 1 succeeds and s <= -1 fails, at the step it happens. pi is deterministic,
    a = clip(0.1 + 0.15 s): it drifts right, slowly near the left end, and starts each
    chunk from where the chunk begins, so Q^pi(s, chunk) is one rollout. The behaviour
    draws every step uniformly. The observation is s, seen through radial features."""

    name: str = "continuous"
    horizon: int = 2
    gamma: float = 0.95
    time_cost: float = 0.01
    max_step: float = 0.25
    max_steps: int = 40
    centres: np.ndarray = field(default_factory=lambda: np.linspace(-1, 1, 9))

    @property
    def data_config(self) -> DataConfig:
        return DataConfig(stride=self.horizon, gamma=self.gamma, success_reward=1.0, time_cost=self.time_cost)

    def features(self, joints: np.ndarray) -> torch.Tensor:
        s = np.asarray(joints, dtype=np.float32)[:, :1]
        return torch.tensor(np.exp(-((s - self.centres[None]) / 0.25) ** 2), dtype=torch.float32)

    def pi_chunk(self, s: float) -> np.ndarray:
        return np.array([np.clip(0.1 + 0.15 * s, -self.max_step, self.max_step)] * self.horizon, dtype=np.float32)

    def exact_q(self, s: float, chunk) -> float:
        total, discount = 0.0, 1.0
        while discount > 1e-6:  # past this, what is left is below 1e-6 (pi can stall near s = -2/3)
            for action in chunk:
                s = s + float(action)
                total -= self.time_cost * discount
                if s >= 1.0:
                    return total + discount
                if s <= -1.0:
                    return total
                discount *= self.gamma
            chunk = self.pi_chunk(s)
        return total

    def episodes(self, rng, count: int) -> list:
        result = []
        for _ in range(count):
            s = float(rng.uniform(-0.9, 0.9))
            joints, actions, outcome = [], [], "truncated"
            for _ in range(self.max_steps):
                action = float(rng.uniform(-self.max_step, self.max_step))
                joints.append([s])
                actions.append([action])
                s += action
                if s >= 1.0 or s <= -1.0:
                    outcome = "success" if s >= 1.0 else "failure"
                    break
            result.append(Episode(np.array(joints), np.array(actions), np.zeros(len(actions), bool), outcome))
        return result

    def policy_chunks(self, rng, next_joints: np.ndarray, samples: int) -> torch.Tensor:
        chunks = np.stack([self.pi_chunk(float(j[0])) for j in next_joints])  # deterministic pi
        return torch.tensor(chunks)[:, None, :, None].expand(-1, samples, -1, -1).contiguous()

    def queries(self, per_state: int = 16):
        """States on a grid, each with `per_state` chunks: random ones, the two extremes and pi's."""
        rng = np.random.default_rng(123)
        states = np.linspace(-0.85, 0.85, 18)
        joints, chunks, q, v = [], [], [], []
        for s in states:
            options = [rng.uniform(-self.max_step, self.max_step, self.horizon) for _ in range(per_state - 3)]
            options += [np.full(self.horizon, -self.max_step), np.full(self.horizon, self.max_step), self.pi_chunk(s)]
            value = self.exact_q(s, self.pi_chunk(s))
            for chunk in options:
                joints.append([s])
                chunks.append(chunk)
                q.append(self.exact_q(s, chunk))
                v.append(value)
        query_chunks = torch.tensor(np.array(chunks, dtype=np.float32)).unsqueeze(-1)
        # V uses pi's chunk, the last option at each state, with probability 1.
        pi = torch.zeros(per_state)
        pi[-1] = 1.0
        return self.features(np.array(joints)), query_chunks, np.array(q), np.array(v), per_state, pi


CASES = {
    case.name: case for case in (
        Corridor("far", target=(0.05, 0.05, 0.05, 0.85), behaviour_right=0.3, states=9, last_start=3),
        Corridor("in-chunk", target=(0.02, 0.02, 0.02, 0.1, 0.02, 0.1, 0.1, 0.62), horizon=3, every_step=True),
        Corridor("stochastic", target=(0.15, 0.15, 0.15, 0.55), slip=0.2),
        Corridor("time-cost", target=(0.15, 0.15, 0.15, 0.55), time_cost=0.02),
        PointOnALine(),
    )
}


@dataclass
class Problem:
    """One case's data as the critic trains on them."""

    case: object
    data: CriticData
    transitions: object


def make_problem(case, seed: int = 0, episodes: int = 2000, samples: int = 16) -> Problem:
    rng = np.random.default_rng(seed)
    episode_list = case.episodes(rng, episodes)
    transitions = chunk_transitions(episode_list, case.horizon, case.data_config)
    joints = np.array([episode_list[e].joints[t] for e, t in transitions.observations])
    next_joints = joints[np.maximum(transitions.next_obs, 0)]
    data = CriticData(
        features=case.features(joints),
        obs=torch.tensor(transitions.obs),
        next_obs=torch.tensor(transitions.next_obs),
        actions=torch.tensor(transitions.actions),
        reward=torch.tensor(transitions.reward),
        discount=torch.tensor(transitions.discount),
        next_actions=case.policy_chunks(rng, next_joints, samples),
        executed=torch.tensor(transitions.mask),
    )
    return Problem(case, data, transitions)


def train_critic(problem: Problem, config: CriticConfig, seed: int = 0, steps: int = 2500, members: int = 10,
          data_next_chunk: bool = False, learn_past_end: bool = False, prior_scale: float = 0.0):
    """A `CriticEnsemble` fitted to the problem. The two flags break it on purpose: a' taken
    from the data's next chunk instead of from pi (it then evaluates the behaviour), and
    training on the repeated last command past an episode's end as if it had run."""
    data = problem.data
    if data_next_chunk:
        following = torch.as_tensor(problem.transitions.next_transition)
        next_chunk = data.actions[following.clamp(min=0)].unsqueeze(1)
        data = replace(data, next_actions=torch.where((following >= 0)[:, None, None, None], next_chunk, data.next_actions[:, :1]))
    if learn_past_end:
        data = replace(data, executed=None)
    torch.manual_seed(seed)
    model = ModelConfig(horizon=problem.case.horizon, action_dim=1, feature_dim=data.features.shape[1],
                        ensemble_size=members, critic_hidden=64)
    critic = CriticEnsemble(model, prior_scale)
    fit_critic(critic, data, config, steps=steps, batch_size=256, generator=torch.Generator().manual_seed(seed))
    return critic


@torch.no_grad()
def measure(critic, case, config: CriticConfig) -> dict:
    """Mean absolute errors against the exact values: `q` of the heads' mean, `q_pessimistic`
    of the pessimistic value, `advantage` of the pessimistic A = Qp(s, a) - E_pi Qp(s, a')."""
    features, chunks, q_true, v_true, per_state, pi = case.queries()
    q = critic(features, chunks)  # (K, Q)
    mean = q.mean(0).numpy()
    low = pessimistic(q, config)
    value = (low.view(-1, per_state) * pi).sum(1).repeat_interleave(per_state)
    advantage = (low - value).numpy()
    return {
        "q": float(np.abs(mean - q_true).mean()),
        "q_pessimistic": float(np.abs(low.numpy() - q_true).mean()),
        "advantage": float(np.abs(advantage - (q_true - v_true)).mean()),
    }


@torch.no_grad()
def past_end_spread(critic, case: Corridor) -> float:
    """How much the value of a chunk that ends the episode at its first step depends on the
    steps after it, which never run: the largest spread of the heads' mean Q over such
    chunks, from the state next to success (first step right) and the state next to
    failure (first step left). Exactly 0 for Q^pi. Needs a case with `every_step` and no slip."""
    assert case.every_step and not case.slip
    chunks = case.chunks()
    spreads = []
    for state, first in ((case.states - 2, RIGHT), (1, LEFT)):
        ending = torch.tensor(chunks[chunks[:, 0] == first]).unsqueeze(-1)
        features = case.features(np.repeat(np.eye(case.states)[[state]], len(ending), axis=0))
        q = critic(features, ending).mean(0)
        spreads.append(float(q.max() - q.min()))
    return max(spreads)
