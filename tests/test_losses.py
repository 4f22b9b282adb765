"""OC-softmax: sign convention, margins, gradients, class weights and the head wrapper."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepfake_audio.losses import OCSoftmax, OCSoftmaxHead


def centre(loss: OCSoftmax) -> torch.Tensor:
    return F.normalize(loss.center.detach(), dim=0)


def test_score_is_cosine_with_centre_and_bonafide_scores_higher():
    torch.manual_seed(0)
    oc = OCSoftmax(8)
    w = centre(oc)
    other = torch.randn(8)
    scores = oc.score(torch.stack([3 * w, -w, other]))
    torch.testing.assert_close(scores[:2], torch.tensor([1.0, -1.0]))
    torch.testing.assert_close(scores[2], F.cosine_similarity(other, w, dim=0))


def test_loss_values_follow_the_margins():
    oc = OCSoftmax(4, m_bonafide=0.9, m_spoof=0.2, alpha=20.0)
    scores = torch.tensor([0.5, 0.5, 0.95, 0.1])
    labels = torch.tensor([1, 0, 1, 0])
    per_row = F.softplus(torch.tensor([20 * (0.9 - 0.5), 20 * (0.5 - 0.2), 20 * (0.9 - 0.95), 20 * (0.1 - 0.2)]))
    torch.testing.assert_close(oc.loss(scores, labels), per_row.mean())
    # A bona fide score above m_bonafide and a spoof score below m_spoof cost little; the reverse a lot.
    ok = oc.loss(torch.tensor([0.99, -0.5]), torch.tensor([1, 0]))
    wrong = oc.loss(torch.tensor([-0.5, 0.99]), torch.tensor([1, 0]))
    assert ok < 0.1 < 10 < wrong


def test_loss_falls_as_bonafide_aligns_and_spoof_opposes():
    torch.manual_seed(0)
    oc = OCSoftmax(16)
    w = centre(oc)
    noise = torch.randn(6, 16)
    labels = torch.tensor([1, 1, 1, 0, 0, 0])
    sign = (2 * labels - 1).float().unsqueeze(1)  # +1 bona fide, -1 spoof
    losses = [oc(noise + t * sign * w * 10, labels).item() for t in (0.0, 0.5, 1.0, 2.0)]
    assert all(a > b for a, b in zip(losses, losses[1:]))
    assert oc(sign * w, labels).item() < oc(-sign * w, labels).item()


def test_gradient_reaches_centre_and_a_step_moves_it_towards_bonafide():
    torch.manual_seed(0)
    oc = OCSoftmax(8)
    bonafide, spoof = torch.randn(4, 8), torch.randn(4, 8)
    x, labels = torch.cat([bonafide, spoof]), torch.tensor([1] * 4 + [0] * 4)
    before = oc.score(x).detach()
    oc(x, labels).backward()
    assert oc.center.grad is not None and oc.center.grad.abs().sum() > 0
    with torch.no_grad():
        oc.center -= 0.1 * oc.center.grad / oc.center.grad.norm() * oc.center.norm()
    after = oc.score(x).detach()
    assert (after[:4] - before[:4]).mean() > 0 > (after[4:] - before[4:]).mean()


def test_gradient_reaches_embeddings():
    oc = OCSoftmax(8)
    x = torch.randn(4, 8, requires_grad=True)
    oc(x, torch.tensor([1, 0, 1, 0])).backward()
    assert x.grad is not None and x.grad.abs().sum(dim=1).min() > 0


def test_class_weights_scale_rows_like_bce_pos_weight():
    scores = torch.tensor([0.3, 0.4, 0.6])
    labels = torch.tensor([1.0, 0.0, 1.0])  # float labels, as the training loop gives them
    plain = OCSoftmax(4)
    weighted = OCSoftmax(4, weight=(1.0, 3.0))
    bonafide, spoof = labels == 1, labels == 0
    per_row = F.softplus(20 * torch.where(bonafide, 0.9 - scores, scores - 0.2))
    torch.testing.assert_close(weighted.loss(scores, labels), (per_row * (1 + 2 * bonafide)).mean())
    torch.testing.assert_close(weighted.loss(scores[spoof], labels[spoof]), plain.loss(scores[spoof], labels[spoof]))
    torch.testing.assert_close(
        weighted.loss(scores[bonafide], labels[bonafide]), 3 * plain.loss(scores[bonafide], labels[bonafide])
    )
    assert "weight" not in weighted.state_dict()  # a training option: a bundle loads without it


def test_head_takes_the_bonafide_weight_per_call():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 4)
    net.embed = net.forward
    head = OCSoftmaxHead(net, in_features=4)
    scores, labels = torch.tensor([0.3, 0.4, 0.6]), torch.tensor([1.0, 0.0, 1.0])
    weighted = OCSoftmax(4, weight=(1.0, 3.0))
    torch.testing.assert_close(head.loss(scores, labels, bonafide_weight=3.0), weighted.loss(scores, labels))
    torch.testing.assert_close(head.loss(scores, labels), OCSoftmax(4).loss(scores, labels))  # restored after


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="m_spoof"):
        OCSoftmax(4, m_bonafide=0.2, m_spoof=0.5)
    with pytest.raises(ValueError, match="alpha"):
        OCSoftmax(4, alpha=0)
    with pytest.raises(ValueError, match="weight"):
        OCSoftmax(4, weight=(1.0, -1.0))
    with pytest.raises(ValueError, match="in_features"):
        OCSoftmax(0)
    oc = OCSoftmax(4)
    with pytest.raises(ValueError, match="labels must be 0"):
        oc.loss(torch.zeros(2), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="do not match"):
        oc.loss(torch.zeros(2), torch.tensor([1, 0, 1]))
    with pytest.raises(ValueError, match=r"\(batch, 4\)"):
        oc.score(torch.zeros(2, 5))


class TinyEmbedder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 5)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_head_scores_and_trains_through_the_network():
    torch.manual_seed(0)
    model = OCSoftmaxHead(TinyEmbedder(), in_features=5, weight=(1.0, 2.0))
    x, labels = torch.randn(8, 6), torch.tensor([1, 0] * 4)
    scores = model(x)
    assert scores.shape == (8,)
    torch.testing.assert_close(scores, model.ocsoftmax.score(model.net.embed(x)))
    model.loss(scores, labels).backward()
    assert model.net.fc.weight.grad.abs().sum() > 0
    assert model.ocsoftmax.center.grad.abs().sum() > 0
    assert {"net.fc.weight", "ocsoftmax.center"} <= {name for name, _ in model.named_parameters()}
    with pytest.raises(ValueError, match="no embed method"):
        OCSoftmaxHead(nn.Linear(6, 5), in_features=5)
