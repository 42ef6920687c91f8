"""PPO's advantage and loss computations (agents/ppo_text.py) against an independent reference.

The reference below is a straightforward per-token Python implementation (plain floats, loops over each
signal's valid tokens) of: the per-token KL penalty with the Receiver's reward at the last token, GAE,
advantage whitening over the batch's valid tokens, the clipped surrogate, the (clipped) value loss, the
entropy bonus and the diagnostics.  The library's vectorised torch code runs in float64 on the same small
fixed tensors and must agree to 1e-12 (float64 round-off; the two only differ in summation order).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from agents import ppo_text as P  # noqa: E402

TOL = dict(rtol=1e-12, atol=1e-12)

# Three signals of 4, 2 and 5 tokens (right-padded to 5).  Padded entries hold garbage that must be ignored.
LENGTHS = [4, 2, 5]
LOGPROBS = [[-1.2, -0.3, -2.5, -0.7, 9.0], [-0.1, -3.3, 9.0, 9.0, 9.0], [-0.9, -1.1, -0.2, -4.0, -0.6]]
REF_LOGPROBS = [[-1.0, -0.5, -2.0, -0.9, -7.0], [-0.4, -3.0, -7.0, -7.0, -7.0], [-1.5, -1.0, -0.1, -3.0, -0.8]]
VALUES = [[0.10, 0.30, -0.20, 0.55, 5.0], [0.70, 0.20, 5.0, 5.0, 5.0], [-0.30, 0.05, 0.40, 0.25, 0.90]]
SCORES = [1.0, 0.0, 1.0]


def mask_of(lengths, width):
    return [[1 if t < n else 0 for t in range(width)] for n in lengths]


def reference_advantages(beta, gamma, lam, norm_adv):
    """Per-token rewards, GAE advantages (whitened or not) and returns, one signal at a time."""
    rewards, advantages, returns = [], [], []
    for lp, ref, v, score, n in zip(LOGPROBS, REF_LOGPROBS, VALUES, SCORES, LENGTHS):
        r = [-beta * (lp[t] - ref[t]) for t in range(n)]
        r[n - 1] += score
        a = [0.0] * n
        following = 0.0
        for t in reversed(range(n)):
            next_value = v[t + 1] if t + 1 < n else 0.0  # the signal ends after its last token
            delta = r[t] + gamma * next_value - v[t]
            following = delta + gamma * lam * following
            a[t] = following
        rewards.append(r)
        advantages.append(a)
        returns.append([a[t] + v[t] for t in range(n)])
    if norm_adv:
        flat = [x for row in advantages for x in row]
        mean = sum(flat) / len(flat)
        var = sum((x - mean) ** 2 for x in flat) / len(flat)
        advantages = [[(x - mean) / math.sqrt(var + 1e-8) for x in row] for row in advantages]
    kl_per_signal = [sum(lp[t] - ref[t] for t in range(n)) for lp, ref, n in zip(LOGPROBS, REF_LOGPROBS, LENGTHS)]
    return rewards, advantages, returns, sum(kl_per_signal) / len(kl_per_signal)


def as_batch():
    f64 = dict(dtype=torch.float64)
    return {"response_mask": torch.tensor(mask_of(LENGTHS, 5)), "logprobs": torch.tensor(LOGPROBS, **f64),
            "ref_logprobs": torch.tensor(REF_LOGPROBS, **f64), "values": torch.tensor(VALUES, **f64),
            "scores": torch.tensor(SCORES, **f64)}


def valid(x: torch.Tensor) -> list[list[float]]:
    return [x[i, :n].tolist() for i, n in enumerate(LENGTHS)]


def assert_rows_close(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        torch.testing.assert_close(torch.tensor(g, dtype=torch.float64), torch.tensor(e, dtype=torch.float64), **TOL)


@pytest.mark.parametrize("beta,gamma,lam,norm_adv", [(0.05, 1.0, 0.95, True), (0.3, 0.9, 0.5, False),
                                                     (0.0, 1.0, 1.0, True), (0.1, 0.99, 0.0, False)])
def test_advantages_match_reference(beta, gamma, lam, norm_adv):
    out = P.compute_advantages(as_batch(), beta, gamma, lam, norm_adv)
    rewards, advantages, returns, kl = reference_advantages(beta, gamma, lam, norm_adv)
    assert_rows_close(valid(out["rewards"]), rewards)
    assert_rows_close(valid(out["advantages"]), advantages)
    assert_rows_close(valid(out["returns"]), returns)
    torch.testing.assert_close(out["kl"], torch.tensor(kl, dtype=torch.float64), **TOL)
    pad = torch.tensor(mask_of(LENGTHS, 5)) == 0
    assert torch.all(out["advantages"][pad] == 0) and torch.all(out["returns"][pad] == 0)
    if norm_adv:  # whitened over the valid tokens only
        flat = torch.tensor([x for row in valid(out["advantages"]) for x in row], dtype=torch.float64)
        assert abs(flat.mean().item()) < 1e-12 and flat.var(unbiased=False).item() == pytest.approx(1.0, abs=1e-7)


# --------------------------------------------------------------------------------------------- the loss
OLD_LP = [[-1.0, -0.5, -2.0, -0.9, 0.0], [-0.4, -3.0, 0.0, 0.0, 0.0], [-1.5, -1.0, -0.1, -3.0, -0.8]]
# new - old = +0.5 (ratio 1.65, clipped high), -0.6 (0.55, clipped low), +0.05, -0.1, ... mixed signs of A
NEW_LP = [[-0.5, -1.1, -1.95, -1.0, 3.0], [-0.1, -3.4, 2.0, 2.0, 2.0], [-1.45, -0.7, -0.15, -2.5, -1.2]]
ADV = [[1.0, -0.8, 0.3, -1.5, 7.0], [-0.6, 1.2, 7.0, 7.0, 7.0], [0.9, -0.2, -1.1, 0.4, 2.0]]
OLD_V = [[0.1, 0.3, -0.2, 0.55, 4.0], [0.7, 0.2, 4.0, 4.0, 4.0], [-0.3, 0.05, 0.4, 0.25, 0.9]]
NEW_V = [[0.5, 0.25, -0.2, 0.2, -4.0], [0.95, -0.3, -4.0, -4.0, -4.0], [-0.1, 0.1, 0.9, 0.2, 0.6]]
RET = [[0.6, 0.1, 0.3, 0.9, 1.0], [1.0, 0.0, 1.0, 1.0, 1.0], [0.2, 0.4, 0.5, -0.1, 1.0]]
ENT = [[2.0, 1.5, 3.0, 0.5, 9.0], [1.0, 2.5, 9.0, 9.0, 9.0], [0.7, 1.8, 2.2, 0.9, 1.1]]


def reference_loss(clip, clip_vloss, vf_clip, vf_coef, ent_coef):
    pg, vl, en, kl, cf, ra, grad = [], [], [], [], [], [], []
    n_valid = sum(LENGTHS)
    for i, n in enumerate(LENGTHS):
        for t in range(n):
            r = math.exp(NEW_LP[i][t] - OLD_LP[i][t])
            a = ADV[i][t]
            unclipped, clipped = -a * r, -a * min(max(r, 1 - clip), 1 + clip)
            pg.append(max(unclipped, clipped))
            # d/d new_logprob of the surrogate: -a r where the unclipped branch is the max, else 0
            grad.append((-a * r if unclipped >= clipped else 0.0) / n_valid)
            err = (NEW_V[i][t] - RET[i][t]) ** 2
            if clip_vloss:
                v_clip = OLD_V[i][t] + min(max(NEW_V[i][t] - OLD_V[i][t], -vf_clip), vf_clip)
                err = max(err, (v_clip - RET[i][t]) ** 2)
            vl.append(0.5 * err)
            en.append(ENT[i][t])
            kl.append((r - 1) - math.log(r))
            cf.append(1.0 if abs(r - 1) > clip else 0.0)
            ra.append(r)

    def mean(xs):
        return sum(xs) / len(xs)

    parts = {"policy": mean(pg), "value": mean(vl), "entropy": mean(en), "approx_kl": mean(kl),
             "clipfrac": mean(cf), "ratio": mean(ra)}
    return parts["policy"] + vf_coef * parts["value"] - ent_coef * parts["entropy"], parts, grad


@pytest.mark.parametrize("clip,clip_vloss,vf_clip,vf_coef,ent_coef", [(0.2, True, 0.2, 0.1, 0.01),
                                                                      (0.1, False, 0.2, 0.5, 0.0),
                                                                      (0.3, True, 0.05, 1.0, 0.1)])
def test_ppo_loss_matches_reference(clip, clip_vloss, vf_clip, vf_coef, ent_coef):
    f64 = dict(dtype=torch.float64)
    new_lp = torch.tensor(NEW_LP, **f64, requires_grad=True)
    args = P.Args(clip_coef=clip, clip_vloss=clip_vloss, vf_clip_coef=vf_clip, vf_coef=vf_coef, ent_coef=ent_coef)
    mask = torch.tensor(mask_of(LENGTHS, 5), **f64)
    loss, parts = P.ppo_loss(new_lp, torch.tensor(NEW_V, **f64), torch.tensor(ENT, **f64), torch.tensor(OLD_LP, **f64),
                             torch.tensor(OLD_V, **f64), torch.tensor(ADV, **f64), torch.tensor(RET, **f64), mask, args)
    ref_loss, ref_parts, ref_grad = reference_loss(clip, clip_vloss, vf_clip, vf_coef, ent_coef)
    torch.testing.assert_close(loss, torch.tensor(ref_loss, **f64), **TOL)
    assert parts.keys() == ref_parts.keys()
    for k, v in ref_parts.items():
        torch.testing.assert_close(parts[k], torch.tensor(v, **f64), **TOL, msg=k)
    assert 0 < ref_parts["clipfrac"] < 1  # the fixture exercises both clipped and unclipped tokens
    (grad,) = torch.autograd.grad(loss, new_lp)  # only the surrogate depends on the new log-probs
    got = [x for row in valid(grad) for x in row]
    torch.testing.assert_close(torch.tensor(got, **f64), torch.tensor(ref_grad, **f64), **TOL)
    assert torch.all(grad[mask == 0] == 0)  # padding never gets a gradient
