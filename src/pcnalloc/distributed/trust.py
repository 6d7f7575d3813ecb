"""Site reputation from service feedback by Bayesian inference (BC-DRL / RPoS, DESIGN §8).

The formulation follows the reputation evaluation of the RPoS consensus in the BC-DRL paper
(§III-A, eqs. (1)–(5); "site" here is the paper's base station, "slot" its time slot):

- **Feedback** (§III-A1): in slot t each user whose flow site m relayed reports f ∈ {0, 1}
  (1 = served, 0 = denied). Feedback is counted per site: ``positive_N`` ones and
  ``negative_N`` zeros.
- **DoS inference** (eq. (1)): with prior P(S) that a site serves, and the likelihoods
  P(f=1 | S) = p_S and P(f=1 | D) = p_D of positive feedback given that the site served (S)
  or denied (D), feedback from different users being independent,

  ``ρ_m,t = P(S | F) = P(S)·Π P(f|S) / (P(S)·Π P(f|S) + P(D)·Π P(f|D))``.

  It is computed in the log-odds domain so hundreds of feedbacks per slot do not underflow:
  ``logit ρ = logit P(S) + n⁺·ln(p_S/p_D) + n⁻·ln((1−p_S)/(1−p_D))``.
- **Reputation** (eqs. (2)–(3)): unchanged when a site received no feedback in the slot,
  otherwise ``R_m,t = ω·ρ_m,t + (1 − ω)·H_m,t`` with the discounted history

  ``H_m,t = Σ_{τ<t} θ^{t−1−τ} R_m,τ / Σ_{τ<t} θ^{t−1−τ}``

  over every past slot τ = 0 … t−1 (R_m,0 = 1, the paper's initial reputation). The paper's
  per-slot discount factors θ_τ are lost from its text; a geometric discount θ^{age} is the
  usual choice of its reference [34] and is what we use (``history_discount``).
- **Committee** (eqs. (4)–(5)): sites whose reputation is strictly above
  ``R_th = mean_m(R_m,t) · κ`` (``committee_coefficient``).

Defaults are the paper's Table II (P(S) = 0.8, κ = 1, reputation coefficient ω = 0.2). With
symmetric likelihoods (p_D = 1 − p_S) a site is inferred to deny service once somewhat more
than half its feedback is negative (the prior shifts the boundary by logit P(S) feedbacks):
that is why honest sites keep a reputation near 1 under false-feedback shares approaching
50 % when many feedbacks arrive per slot (the paper's Fig. 5), and why a malicious site must
drop more than about half the traffic it relays to be isolated. Asymmetric likelihoods
(p_D closer to p_S) catch stealthier droppers at the price of robustness to false feedback.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pcnalloc.errors import ConfigError


class TrustConfig(BaseModel):
    """Parameters of the Bayesian reputation (BC-DRL §III-A, Table II)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prior_served: float = Field(
        0.8, gt=0, lt=1, description="prior P(S) that a site serves the flows it relays"
    )
    p_positive_if_served: float = Field(
        0.9, gt=0, lt=1, description="likelihood P(f=1 | S) of positive feedback from a served user"
    )
    p_positive_if_denied: float = Field(
        0.1, gt=0, lt=1, description="likelihood P(f=1 | D) of positive feedback when denied"
    )
    inference_weight: float = Field(
        0.2, ge=0, le=1, description="weight ω of the new Bayesian inference (1 − ω on history)"
    )
    history_discount: float = Field(
        0.9, ge=0, le=1, description="discount θ per slot of age of past reputations"
    )
    committee_coefficient: float = Field(
        1.0, ge=0, description="κ: the committee holds sites above mean reputation × κ"
    )
    initial_reputation: float = Field(1.0, ge=0, le=1, description="R_m,0 of every site")

    @model_validator(mode="after")
    def _informative(self) -> TrustConfig:
        if self.p_positive_if_served <= self.p_positive_if_denied:
            raise ValueError(
                f"p_positive_if_served ({self.p_positive_if_served}) must exceed "
                f"p_positive_if_denied ({self.p_positive_if_denied}), or positive feedback "
                "would count against a site"
            )
        return self


def _logit(p: float) -> float:
    return float(np.log(p) - np.log1p(-p))


def dos_inference(positive_N: np.ndarray, negative_N: np.ndarray, cfg: TrustConfig) -> np.ndarray:
    """Posterior probability that each site served its users, BC-DRL eq. (1).

    Args:
        positive_N: positive feedbacks (f = 1) per site in the slot, shape (N,).
        negative_N: negative feedbacks (f = 0) per site in the slot, shape (N,).
        cfg: prior and likelihoods.

    Returns:
        ρ per site in [0, 1], shape (N,); equal to the prior P(S) where there is no feedback.
    """
    pos = np.asarray(positive_N, dtype=float)
    neg = np.asarray(negative_N, dtype=float)
    ps, pd = cfg.p_positive_if_served, cfg.p_positive_if_denied
    log_odds = (
        _logit(cfg.prior_served)
        + pos * (np.log(ps) - np.log(pd))
        + neg * (np.log1p(-ps) - np.log1p(-pd))
    )
    return 0.5 * (1.0 + np.tanh(0.5 * log_odds))  # the logistic function, overflow-free


def committee_mask(reputation_N: np.ndarray, coefficient: float) -> np.ndarray:
    """Sites in the trusted committee, BC-DRL eqs. (4)–(5): R_m > mean(R) · κ, shape (N,)."""
    rep = np.asarray(reputation_N, dtype=float)
    return rep > rep.mean() * coefficient


class ReputationTracker:
    """Reputation of N sites over slots, BC-DRL eqs. (1)–(3), vectorised over sites.

    Args:
        n_sites: number of sites N.
        config: the reputation parameters.

    Attributes:
        reputation_N: current reputation R_m,t, shape (N,).
        inference_N: the last slot's Bayesian inference ρ_m,t (prior where no feedback).
        slot: slots processed so far (t).
    """

    def __init__(self, n_sites: int, config: TrustConfig | None = None) -> None:
        if n_sites < 1:
            raise ConfigError(f"n_sites must be ≥ 1, got {n_sites}")
        self.cfg = config or TrustConfig()
        self.n_sites = n_sites
        self.reputation_N = np.full(n_sites, self.cfg.initial_reputation)
        self.inference_N = np.full(n_sites, self.cfg.prior_served)
        self._hist_num_N = np.zeros(n_sites)
        self._hist_den = 0.0
        self.slot = 0

    def history_N(self) -> np.ndarray:
        """Discounted mean of past reputations H_m,t+1 that the next update would use."""
        num = self.cfg.history_discount * self._hist_num_N + self.reputation_N
        den = self.cfg.history_discount * self._hist_den + 1.0
        return num / den

    def update(self, positive_N: np.ndarray, negative_N: np.ndarray) -> np.ndarray:
        """Close one slot with its feedback counts; returns the new reputation, shape (N,).

        Sites with no feedback keep their reputation (eq. (2)); the others move to
        ω·ρ + (1 − ω)·H (eq. (3)). Every slot's reputation enters the history, feedback or not.

        Raises:
            ConfigError: if the counts do not have shape (N,) or are negative.
        """
        pos = np.asarray(positive_N)
        neg = np.asarray(negative_N)
        for name, arr in (("positive_N", pos), ("negative_N", neg)):
            if arr.shape != (self.n_sites,) or (arr < 0).any():
                raise ConfigError(
                    f"{name} must be non-negative counts of shape ({self.n_sites},), "
                    f"got shape {arr.shape}"
                )
        theta = self.cfg.history_discount
        self._hist_num_N = theta * self._hist_num_N + self.reputation_N
        self._hist_den = theta * self._hist_den + 1.0
        history = self._hist_num_N / self._hist_den
        rho = dos_inference(pos, neg, self.cfg)
        w = self.cfg.inference_weight
        has_feedback = (pos + neg) > 0
        self.reputation_N = np.where(has_feedback, w * rho + (1.0 - w) * history, self.reputation_N)
        self.inference_N = rho
        self.slot += 1
        return self.reputation_N

    def committee(self) -> np.ndarray:
        """Boolean committee membership per site (eqs. (4)–(5)), shape (N,)."""
        return committee_mask(self.reputation_N, self.cfg.committee_coefficient)

    def committee_threshold(self) -> float:
        """R_th = mean reputation × κ (eq. (4))."""
        return float(self.reputation_N.mean() * self.cfg.committee_coefficient)
