"""Training losses beyond binary cross-entropy.

:class:`OCSoftmax` is the one-class softmax of Zhang, Jiang and Duan, "One-class learning towards
synthetic voice spoofing detection" (IEEE SPL 2021): bona fide embeddings are pulled to within
a tight angle of one learned direction, spoof embeddings pushed away from it by a wider margin,
so unseen attacks that do not look bona fide score low. Labels: 1 = bona fide, 0 = spoof; a
higher score means more bona fide.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class OCSoftmax(nn.Module):
    """One-class softmax loss on embeddings.

    The score of an embedding ``x`` is ``s = cos(w, x)`` in [-1, 1], with ``w`` a learned
    direction (the bona fide centre). Per row, the loss is ``softplus(alpha * (m_bonafide - s))``
    for bona fide rows (zero-ish once ``s > m_bonafide``) and ``softplus(alpha * (s - m_spoof))``
    for spoof rows (zero-ish once ``s < m_spoof``), i.e. ``softplus(alpha * (m_y - s) * (2y - 1))``.

    Args:
        in_features: embedding width.
        m_bonafide: margin bona fide scores are pushed above.
        m_spoof: margin spoof scores are pushed below; ``-1 <= m_spoof < m_bonafide <= 1``.
        alpha: scale factor (sharpness), positive.
        weight: optional per-class row weights ``(spoof, bona fide)``. The loss is the mean over
            the batch of ``weight[y] * loss``, so ``(1, p)`` weighs rows as
            ``BCEWithLogitsLoss(pos_weight=p)`` does.

    Raises:
        ValueError: naming a bad argument.
    """

    def __init__(
        self,
        in_features: int,
        *,
        m_bonafide: float = 0.9,
        m_spoof: float = 0.2,
        alpha: float = 20.0,
        weight: Sequence[float] | torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if in_features < 1:
            raise ValueError(f"in_features must be at least 1, got {in_features}")
        if not -1.0 <= m_spoof < m_bonafide <= 1.0:
            raise ValueError(f"need -1 <= m_spoof < m_bonafide <= 1, got m_spoof={m_spoof}, m_bonafide={m_bonafide}")
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        self.m_bonafide, self.m_spoof, self.alpha = float(m_bonafide), float(m_spoof), float(alpha)
        # Only its direction matters (it is normalised in score), so the scale of the init is free.
        self.center = nn.Parameter(torch.randn(in_features))
        if weight is not None:
            weight = torch.as_tensor(weight, dtype=torch.float32).flatten()
            if weight.numel() != 2 or bool((weight < 0).any()) or not bool(torch.isfinite(weight).all()):
                raise ValueError(
                    f"weight must be two finite non-negative numbers (spoof, bona fide), got {weight.tolist()}"
                )
        # Not persistent: class weights are a training option, not part of a trained model's state.
        self.register_buffer("weight", weight, persistent=False)

    def score(self, embedding: torch.Tensor) -> torch.Tensor:
        """Cosine of each embedding ``(B, in_features)`` with the centre: ``(B,)`` in [-1, 1]."""
        if embedding.ndim != 2 or embedding.shape[1] != self.center.numel():
            raise ValueError(
                f"expected embeddings of shape (batch, {self.center.numel()}), got {tuple(embedding.shape)}"
            )
        w = F.normalize(self.center, dim=0)  # (D,)
        return F.normalize(embedding, dim=1) @ w  # (B, D) @ (D,) -> (B,)

    def loss(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The OC-softmax loss of scores from :meth:`score`.

        Args:
            scores: ``(B,)`` cosines.
            labels: ``(B,)`` 1 = bona fide, 0 = spoof (any dtype).

        Returns:
            Scalar mean loss.
        """
        if labels.shape != scores.shape:
            raise ValueError(
                f"labels of shape {tuple(labels.shape)} do not match scores of shape {tuple(scores.shape)}"
            )
        bonafide = labels == 1
        if not bool((bonafide | (labels == 0)).all()):
            raise ValueError("labels must be 0 (spoof) or 1 (bona fide)")
        margin = torch.where(bonafide, self.m_bonafide - scores, scores - self.m_spoof)  # (B,)
        per_row = F.softplus(self.alpha * margin)  # (B,)
        if self.weight is not None:
            per_row = per_row * self.weight.to(per_row.dtype)[bonafide.long()]  # (B,)
        return per_row.mean()

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``(B, in_features)`` embeddings and ``(B,)`` labels -> scalar loss."""
        return self.loss(self.score(embedding), labels)


class OCSoftmaxHead(nn.Module):
    """A network with an ``embed`` method, scored by OC-softmax.

    ``model(x)`` gives ``(B,)`` scores (cosines, higher = more bona fide) and
    ``model.loss(scores, labels)`` their OC-softmax loss, so a training loop that calls the model
    and then a loss on its output works unchanged. The centre is a parameter of this module.

    Args:
        net: has ``embed(x) -> (B, in_features)``.
        in_features: the width of ``net.embed``'s output.
        m_bonafide, m_spoof, alpha, weight: as for :class:`OCSoftmax`.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        in_features: int,
        m_bonafide: float = 0.9,
        m_spoof: float = 0.2,
        alpha: float = 20.0,
        weight: Sequence[float] | torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if not callable(getattr(net, "embed", None)):
            raise ValueError(f"{type(net).__name__} has no embed method to score with OC-softmax")
        self.net = net
        self.ocsoftmax = OCSoftmax(in_features, m_bonafide=m_bonafide, m_spoof=m_spoof, alpha=alpha, weight=weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores ``(B,)`` of the network's input ``x``."""
        return self.ocsoftmax.score(self.net.embed(x))

    def loss(self, scores: torch.Tensor, labels: torch.Tensor, *, bonafide_weight: float | None = None) -> torch.Tensor:
        """Scalar OC-softmax loss of ``(B,)`` scores from :meth:`forward` and ``(B,)`` labels.

        ``bonafide_weight``: weigh bona fide rows by it (spoof rows by 1) instead of the head's ``weight``.
        """
        if bonafide_weight is None:
            return self.ocsoftmax.loss(scores, labels)
        saved = self.ocsoftmax.weight
        self.ocsoftmax.weight = torch.tensor([1.0, float(bonafide_weight)], device=scores.device)
        try:
            return self.ocsoftmax.loss(scores, labels)
        finally:
            self.ocsoftmax.weight = saved
