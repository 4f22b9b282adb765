"""Score calibration: a logistic map from raw scores to log-likelihood ratios, fitted on dev.

A model's raw score only ranks clips. ``llr = slope * score + offset`` turns it into a natural-log
likelihood ratio of bona fide against spoof, which means the same thing for every model:
``llr > 0`` favours bona fide, and at equal priors ``P(bona fide) = sigmoid(llr)``. The map is
fitted by logistic regression with the classes weighted equally, so its log-odds are likelihood
ratios rather than posteriors of the dev set's class balance. It is monotone, so EER and ROC are
unchanged; Cllr measures how well it transfers to other sets.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from deepfake_audio.metrics import ArrayLike, validate_scores

__all__ = ["Calibration", "fit_calibration"]


@dataclasses.dataclass(frozen=True)
class Calibration:
    """``llr = slope * score + offset`` (natural log)."""

    slope: float
    offset: float

    def llr(self, scores: ArrayLike) -> np.ndarray:
        """Log-likelihood ratios, shape ``(n,)``, float64."""
        return self.slope * np.asarray(scores, dtype=np.float64) + self.offset

    def prob_bonafide(self, scores: ArrayLike) -> np.ndarray:
        """``P(bona fide)`` at equal priors, in [0, 1], shape ``(n,)``."""
        return 1.0 / (1.0 + np.exp(-self.llr(scores)))

    def to_dict(self) -> dict[str, float]:
        return {"slope": self.slope, "offset": self.offset}

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        return cls(slope=float(data["slope"]), offset=float(data["offset"]))


def fit_calibration(labels: ArrayLike, scores: ArrayLike) -> Calibration:
    """Fit the map on dev-set labels (1 = bona fide) and raw scores, shape ``(n,)`` each.

    Scores are centred and scaled before the (weakly regularised) fit, so it behaves the same
    for logits in the tens and probabilities in [0, 1]; the returned map takes raw scores.
    """
    from sklearn.linear_model import LogisticRegression

    y, s = validate_scores(labels, scores)
    centre, scale = float(np.mean(s)), float(np.std(s))
    scale = scale if scale > 0 else 1.0
    model = LogisticRegression(C=1e4, class_weight="balanced", solver="lbfgs", max_iter=1000)
    model.fit(((s - centre) / scale)[:, None], y)
    slope = float(model.coef_[0, 0]) / scale
    offset = float(model.intercept_[0]) - slope * centre
    return Calibration(slope=slope, offset=offset)
