"""AASIST: shapes and behaviour on small configs, the published presets, checkpoint loading, and the
authors' reference scores with their published weights (skipped when the weights are absent)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_audio.audio import fix_length, read_audio
from deepfake_audio.models.aasist import (
    AASIST,
    AASIST_L_PRESET,
    AASIST_PRESET,
    N_SAMPLES,
    PRESETS,
    GraphAttention,
    GraphPool,
    infer_aasist_config,
    load_aasist_checkpoint,
    sinc_filterbank,
)

SMALL = {
    "n_filters": 9,
    "sinc_kernel": 16,
    "filts": ((1, 4), (4, 4), (4, 8), (8, 8)),
    "gat_dims": (8, 6),
    "pool_ratios": (0.7, 0.5, 0.7, 0.5),
    "temperatures": (2.0, 2.0, 100.0, 100.0),
}
SMALL_SAMPLES = 6000  # (6000 - 16) // 3 // 3**6 = 2 temporal nodes; 9 // 3 = 3 spectral nodes


def _small_model(seed: int = 0) -> AASIST:
    torch.manual_seed(seed)
    model = AASIST(**SMALL).eval()
    # Non-trivial BatchNorm statistics, so that eval-mode tests exercise them.
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model


def _waves(n: int, n_samples: int = SMALL_SAMPLES, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.normal(0, 0.1, (n, n_samples)).astype(np.float32))


# --- small configs, no weights -------------------------------------------------------------


def test_forward_and_embed_shapes() -> None:
    model = _small_model()
    x = _waves(3)
    with torch.no_grad():
        logits = model(x)
        logits_3d = model(x.unsqueeze(1))
        emb = model.embed(x)
    assert logits.shape == (3, 2) and logits.dtype == torch.float32
    assert emb.shape == (3, 5 * SMALL["gat_dims"][1])
    assert torch.equal(logits, logits_3d)
    assert torch.allclose(logits, model.out_layer(emb))
    assert torch.isfinite(logits).all()


def test_eval_is_deterministic_and_batch_independent() -> None:
    model = _small_model()
    x = _waves(4)
    with torch.no_grad():
        first, second = model(x), model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(4)])
    assert torch.equal(first, second)
    torch.testing.assert_close(first, alone, rtol=1e-5, atol=1e-5)
    # Different clips give different scores (the input reaches the output).
    assert not torch.allclose(first[0], first[1])


def test_dropout_acts_only_in_training() -> None:
    model = _small_model()
    x = _waves(2)
    model.train()
    torch.manual_seed(1)
    a = model.embed(x)
    torch.manual_seed(2)
    b = model.embed(x)
    assert not torch.allclose(a, b)
    model.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        c = model.embed(x)
        torch.manual_seed(2)
        d = model.embed(x)
    assert torch.equal(c, d)


def test_backward_reaches_every_trained_parameter() -> None:
    model = _small_model().train()
    model(_waves(2)).sum().backward()
    # bn1 of the residual blocks is in the published weights but, as in the authors' network,
    # does not reach the output (conv1 reads the block input).
    unused = {name for name, _ in model.named_parameters() if ".bn1." in name}
    no_grad = {name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0}
    assert no_grad == unused


@pytest.mark.parametrize(
    "shape, match",
    [((2, 2, SMALL_SAMPLES), "waveforms"), ((2, SMALL_SAMPLES, 1, 1), "waveforms"), ((1, 2000), "at least")],
)
def test_bad_input_raises(shape: tuple[int, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _small_model()(torch.zeros(shape))


def test_sinc_filterbank_tiles_the_band() -> None:
    bank = sinc_filterbank(70, 128, 16000)
    assert bank.shape == (70, 129)  # an even kernel is made odd
    np.testing.assert_allclose(bank, bank[:, ::-1], atol=1e-12)  # symmetric: linear phase
    # The bands tile 0 Hz .. Nyquist, so they sum to a (windowed) unit impulse.
    impulse = np.zeros(129)
    impulse[64] = 1.0
    np.testing.assert_allclose(bank.sum(axis=0), impulse, atol=1e-9)
    # Centre tap = 2 * bandwidth / sample rate; mel spacing widens the bands upwards.
    assert np.all(np.diff(bank[:, 64]) > 0)
    # Each filter's response peaks in its own band, to within the 129-tap resolution (16000 / 129 Hz).
    edges = 700 * (10 ** (np.linspace(0, 2595 * np.log10(1 + 8000 / 700), 71) / 2595) - 1)
    freqs = np.linspace(0, 8000, 4001)
    t = np.arange(129) - 64
    peaks = freqs[np.abs(bank @ np.exp(-2j * np.pi * np.outer(t, freqs) / 16000)).argmax(axis=1)]  # (70,) Hz
    resolution = 16000 / 129
    assert np.all(peaks >= edges[:-1] - resolution) and np.all(peaks <= edges[1:] + resolution)
    assert np.all(np.diff(peaks) >= 0) and peaks[-1] > 7000


def test_graph_attention_is_permutation_equivariant() -> None:
    torch.manual_seed(0)
    layer = GraphAttention(8, 6, temperature=2.0).eval()
    x = torch.randn(2, 5, 8)
    perm = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        torch.testing.assert_close(layer(x)[:, perm], layer(x[:, perm]))


def test_graph_pool_keeps_the_top_gated_nodes() -> None:
    torch.manual_seed(0)
    pool = GraphPool(0.5, 4).eval()
    h = torch.randn(1, 7, 4)
    with torch.no_grad():
        out = pool(h)
        gate = torch.sigmoid(pool.proj(h))[0, :, 0]
    assert out.shape == (1, 3, 4)  # int(0.5 * 7)
    top = torch.argsort(gate, descending=True)[:3]
    torch.testing.assert_close(out[0], h[0, top] * gate[top, None])
    assert GraphPool(0.1, 4).eval()(h).shape == (1, 1, 4)  # keeps at least one node


# --- presets, config inference, loading -----------------------------------------------------


@pytest.mark.parametrize("name", ["AASIST", "AASIST-L"])
def test_presets_build_and_their_config_is_inferred(name: str) -> None:
    preset = PRESETS[name]
    model = AASIST(**preset)
    assert model.out_layer.in_features == 5 * preset["gat_dims"][1]
    assert tuple(model.pos_S.shape) == (1, 23, preset["filts"][-1][-1])
    assert infer_aasist_config(model.state_dict()) == preset
    assert "conv_time.filters" not in model.state_dict()  # fixed filters are not weights


def test_presets_match_the_published_configs() -> None:
    # model_config of AASIST.conf and AASIST-L.conf.
    assert AASIST_PRESET["filts"] == ((1, 32), (32, 32), (32, 64), (64, 64))
    assert AASIST_PRESET["gat_dims"] == (64, 32) and AASIST_PRESET["pool_ratios"] == (0.5, 0.7, 0.5, 0.5)
    assert AASIST_L_PRESET["filts"] == ((1, 32), (32, 32), (32, 24), (24, 24))
    assert AASIST_L_PRESET["gat_dims"] == (24, 32) and AASIST_L_PRESET["pool_ratios"] == (0.4, 0.5, 0.7, 0.5)
    for preset in PRESETS.values():
        assert (preset["n_filters"], preset["sinc_kernel"]) == (70, 128)
        assert preset["temperatures"] == (2.0, 2.0, 100.0, 100.0)


def test_infer_config_rejects_unknown_shapes() -> None:
    with pytest.raises(ValueError, match="match no published variant"):
        infer_aasist_config(AASIST(**SMALL).state_dict())
    with pytest.raises(ValueError, match="no tensor pos_S"):
        infer_aasist_config({"w": torch.zeros(3)})
    with pytest.raises(ValueError, match="mapping"):
        infer_aasist_config([1, 2])


def test_load_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = AASIST(**AASIST_L_PRESET).eval()
    path = tmp_path / "aasist_l.pth"
    torch.save(model.state_dict(), path)
    loaded, config = load_aasist_checkpoint(path)
    assert config == AASIST_L_PRESET
    assert not loaded.training
    x = _waves(1, n_samples=N_SAMPLES // 4)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_load_checkpoint_errors_name_the_path(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(ValueError, match="garbage.pth.*not a PyTorch state dict"):
        load_aasist_checkpoint(garbage)

    other = tmp_path / "other.pth"
    torch.save({"linear.weight": torch.zeros(2, 3)}, other)
    with pytest.raises(ValueError, match="other.pth.*not an AASIST state dict"):
        load_aasist_checkpoint(other)

    # Right shapes for the keys that identify the variant, but a key missing elsewhere.
    partial = AASIST(**AASIST_PRESET).state_dict()
    del partial["pool_hT2.proj.bias"]
    path = tmp_path / "partial.pth"
    torch.save(partial, path)
    with pytest.raises(ValueError, match=r"(?s)partial.pth.*do not fit AASIST.*pool_hT2.proj.bias"):
        load_aasist_checkpoint(path)

    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_aasist_checkpoint(tmp_path / "absent.pth")


# --- the authors' published weights and reference scores -----------------------------------


def _aasist_dir() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "peers" / "aasist"
    return Path(os.environ.get("DEEPFAKE_AUDIO_AASIST_DIR", default))


def _flip_boundary(pool: GraphPool):
    """A forward for ``pool`` that keeps the (k+1)-th node instead of the k-th (the other side of a tie)."""

    def forward(h: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(pool.proj(h))  # (B, N, 1)
        k = max(int(h.size(1) * pool.ratio), 1)
        order = torch.argsort(gate, dim=1, descending=True)  # (B, N, 1)
        keep = torch.cat([order[:, : k - 1], order[:, k : k + 1]], dim=1)  # (B, k, 1)
        return torch.gather(h * gate, 1, keep.expand(-1, -1, h.size(-1)))  # (B, k, D)

    return forward


def _score(model: AASIST, x: torch.Tensor) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Bona fide logits ``(n,)`` and, per pool, the gate margin between the k-th and (k+1)-th node ``(n,)``."""
    margins: dict[str, list[torch.Tensor]] = {}

    def hook(name: str):
        def record(module: GraphPool, inputs: tuple[torch.Tensor], _out: torch.Tensor) -> None:
            h = inputs[0]
            k = max(int(h.size(1) * module.ratio), 1)
            gate = torch.sort(torch.sigmoid(module.proj(h))[..., 0], dim=1, descending=True).values  # (B, N)
            margin = gate[:, k - 1] - gate[:, k] if k < h.size(1) else torch.full((h.size(0),), torch.inf)
            margins.setdefault(name, []).append(margin)

        return record

    pools = {name: m for name, m in model.named_modules() if isinstance(m, GraphPool)}
    handles = [m.register_forward_hook(hook(name)) for name, m in pools.items()]
    try:
        with torch.no_grad():
            scores = torch.cat([model(x[i : i + 8])[:, 1] for i in range(0, len(x), 8)])
    finally:
        for handle in handles:
            handle.remove()
    return scores.numpy().astype(np.float64), {k: torch.cat(v).numpy() for k, v in margins.items()}


TIE_MARGIN = 1e-4
"""Gates closer than this at a pool's top-k boundary are a tie: which node wins is float noise."""


@pytest.mark.slow
@pytest.mark.parametrize("variant, column", [("AASIST-L", "aasist_l_score"), ("AASIST", "aasist_score")])
def test_published_weights_reproduce_reference_scores(variant: str, column: str) -> None:
    """The authors' weights score the 46 reference clips as the authors' code did (|diff| < 1e-3).

    Clips are decoded at 16 kHz, cut to their first 64,600 samples or repeated to that length,
    and scored as the bona fide logit. AASIST-L scores all 46 clips; AASIST, which is as slow on
    one CPU thread, the first 12 (all 46 with DEEPFAKE_AUDIO_AASIST_ALL_CLIPS=1); together
    about a minute on one thread.

    A top-k graph pool can meet two nodes whose gates are equal to float precision; the authors'
    run and this one may then keep different nodes. For such clips (gate margin < 1e-4 at the
    boundary) the score must match with that pool's choice flipped. Measured on all 46 clips: one
    AASIST-L clip ties (pool_S, margin 2.7e-6; 0.070 off as scored, 2.2e-5 flipped); otherwise
    max |diff| is 3.8e-5 (AASIST-L) and 2.0e-5 (AASIST).
    """
    folder = _aasist_dir()
    weights, table = folder / f"{variant}.pth", folder / "reference_scores.csv"
    clips = (folder / ".." / ".." / "bench" / "dev").resolve()
    if not (weights.is_file() and table.is_file() and clips.is_dir()):
        pytest.skip(f"published AASIST weights, reference_scores.csv or bench/dev clips absent under {folder}")
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 46
    if variant == "AASIST" and os.environ.get("DEEPFAKE_AUDIO_AASIST_ALL_CLIPS") != "1":
        rows = rows[:12]

    torch.set_num_threads(1)
    model, config = load_aasist_checkpoint(weights)
    assert config == PRESETS[variant]
    x = torch.from_numpy(np.stack([fix_length(read_audio(clips / r["path"])[0], N_SAMPLES) for r in rows]))
    reference = np.array([float(r[column]) for r in rows])
    scores, margins = _score(model, x)

    diff = np.abs(scores - reference)
    for i in np.where(diff >= 1e-3)[0]:
        pool_name, margin = min(((name, m[i]) for name, m in margins.items()), key=lambda item: item[1])
        assert margin < TIE_MARGIN, f"{rows[i]['path']}: score {scores[i]:.6f} vs {reference[i]:.6f}, no tie"
        pool = model.get_submodule(pool_name)
        pool.forward = _flip_boundary(pool)
        try:
            with torch.no_grad():
                diff[i] = abs(model(x[i : i + 1])[0, 1].item() - reference[i])
        finally:
            del pool.forward
    assert diff.max() < 1e-3, f"{variant}: max |score - reference| = {diff.max():.3g} over {len(rows)} clips"
