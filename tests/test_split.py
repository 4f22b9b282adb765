"""Tests for deepfake_audio.split: speaker-disjoint, stratified splits and their report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepfake_audio.errors import ParamError
from deepfake_audio.params import SplitParams
from deepfake_audio.split import SPLITS, assign_splits, leak_groups, leaks, split_report, stratified_group_split

ATTACKS = ("A01", "A02", "A03", "A04")

# The bar: every split's bona fide share within 2 points of the overall share. The
# greedy + local-search splitter keeps it under 0.9 points on the manifest below for split seeds
# 0-5 (measured); a random speaker-disjoint assignment with the same fractions misses 2 points in
# nearly every draw (median gap about 10 points), so the tolerance has to be earned.
RATIO_TOLERANCE = 0.02
STRATUM_TOLERANCE = 0.08  # each (label, attack) stratum's share per split vs the target fraction
FRACTION_TOLERANCE = 0.04  # each split's share of all clips vs its target fraction


def make_manifest(n_speakers: int = 30, *, seed: int = 0, source: str = "synth") -> pd.DataFrame:
    """A manifest where speakers differ a lot in size and in spoofs per bona fide clip.

    Speaker ``s`` has 2-6 bona fide clips; each is the source of 0-4 spoofs (by ``s % 6``) with
    distinct attacks, and a spoof keeps the speaker of its source clip.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_speakers):
        speaker = f"spk{s:02d}"
        per = (0, 0, 1, 2, 3, 4)[s % 6]
        for i in range(int(rng.integers(2, 7))):
            rows.append({"utt_id": f"{speaker}_b{i}", "label": "bonafide", "speaker": speaker, "attack": "-"})
            for attack in rng.choice(ATTACKS, size=per, replace=False):
                rows.append(
                    {"utt_id": f"{speaker}_b{i}_{attack}", "label": "spoof", "speaker": speaker, "attack": str(attack)}
                )
    df = pd.DataFrame(rows)
    df["path"] = df["utt_id"] + ".wav"
    df["source"] = source
    df["duration_s"] = 1.0
    df["sample_rate"] = 16000
    df["eval_set"] = ""
    return df


def _max_ratio_gap(df: pd.DataFrame, split: pd.Series) -> float:
    overall = (df["label"] == "bonafide").mean()
    return max(abs((df.loc[split == s, "label"] == "bonafide").mean() - overall) for s in SPLITS)


@pytest.fixture(scope="module")
def manifest() -> pd.DataFrame:
    return make_manifest()


@pytest.mark.parametrize("seed", range(6))
def test_speakers_never_span_splits(manifest: pd.DataFrame, seed: int) -> None:
    out = assign_splits(manifest, SplitParams(seed=seed))
    assert set(out["split"]) == set(SPLITS)
    per_speaker = out.groupby("speaker")["split"].nunique()
    assert (per_speaker == 1).all(), per_speaker[per_speaker > 1].index.tolist()
    # Spoofs sit with the bona fide clip they came from.
    by_id = out.set_index("utt_id")["split"]
    spoofs = out[out["label"] == "spoof"]
    sources = spoofs["utt_id"].str.rsplit("_", n=1).str[0]
    assert (by_id.loc[sources].to_numpy() == spoofs["split"].to_numpy()).all()


@pytest.mark.parametrize("seed", range(6))
def test_class_ratio_and_fractions_are_kept(manifest: pd.DataFrame, seed: int) -> None:
    params = SplitParams(seed=seed)
    out = assign_splits(manifest, params)
    assert _max_ratio_gap(manifest, out["split"]) <= RATIO_TOLERANCE
    shares = out["split"].value_counts(normalize=True)
    for name in SPLITS:
        assert shares[name] == pytest.approx(getattr(params, name), abs=FRACTION_TOLERANCE)
    strata = out["label"] + "|" + out["attack"]
    table = pd.crosstab(strata, out["split"], normalize="index")
    for name in SPLITS:
        assert (table[name] - getattr(params, name)).abs().max() <= STRATUM_TOLERANCE, name


def test_ratio_tolerance_is_not_vacuous(manifest: pd.DataFrame) -> None:
    """Most random speaker-disjoint splits of the same manifest fail RATIO_TOLERANCE."""
    rng = np.random.default_rng(0)
    speakers = np.array(sorted(manifest["speaker"].unique()))
    n_train, n_dev = 18, 6  # 60/20/20 of 30 speakers
    passed = 0
    for _ in range(100):
        perm = rng.permutation(speakers)
        mapping = {
            **dict.fromkeys(perm[:n_train], "train"),
            **dict.fromkeys(perm[n_train : n_train + n_dev], "dev"),
            **dict.fromkeys(perm[n_train + n_dev :], "test"),
        }
        passed += _max_ratio_gap(manifest, manifest["speaker"].map(mapping)) <= RATIO_TOLERANCE
    assert passed < 50


@pytest.mark.parametrize("seed", range(3))
def test_small_dev_and_test_keep_every_stratum(seed: int) -> None:
    """80/10/10 on 60 speakers: each (label, attack) stratum within 4 points of its fraction.

    Measured with the current greedy: worst stratum 7-8 points off (dev gets about 4% of the
    A01/A03 spoofs instead of 10%) and train 3.3-3.6 points over its clip share. A prototype
    that follows the greedy with single-speaker moves and pairwise swaps under the same cost
    reaches 0.6-0.9 points and 0.2 points.
    """
    df = make_manifest(60, seed=0)
    params = SplitParams(train=0.8, dev=0.1, test=0.1, seed=seed)
    out = assign_splits(df, params)
    table = pd.crosstab(out["label"] + "|" + out["attack"], out["split"], normalize="index")
    shares = out["split"].value_counts(normalize=True)
    for name in SPLITS:
        assert (table[name] - getattr(params, name)).abs().max() <= 0.04, name
        assert shares[name] == pytest.approx(getattr(params, name), abs=0.02), name


def test_deterministic_for_a_seed_and_different_for_another(manifest: pd.DataFrame) -> None:
    a = assign_splits(manifest, SplitParams(seed=0))["split"]
    b = assign_splits(manifest.copy(), SplitParams(seed=0))["split"]
    pd.testing.assert_series_equal(a, b)
    others = [assign_splits(manifest, SplitParams(seed=s))["split"] for s in (1, 2, 3)]
    assert any(not o.equals(a) for o in others)


def test_row_order_does_not_change_the_assignment(manifest: pd.DataFrame) -> None:
    """Shuffling the manifest rows gives each speaker the same split (ties broken by seed, not order)."""
    shuffled = manifest.sample(frac=1.0, random_state=3)
    a = assign_splits(manifest, SplitParams(seed=0)).groupby("speaker")["split"].first()
    b = assign_splits(shuffled, SplitParams(seed=0)).groupby("speaker")["split"].first()
    pd.testing.assert_series_equal(a.sort_index(), b.sort_index())


def test_output_keeps_rows_index_and_columns(manifest: pd.DataFrame) -> None:
    df = manifest.copy()
    df.index = df.index * 7 + 3  # a non-default index must stay aligned
    out = assign_splits(df, SplitParams())
    assert list(out.columns) == list(df.columns) + ["split"]
    pd.testing.assert_frame_equal(out.drop(columns="split"), df)
    assert "split" not in df.columns  # the input is not modified
    assert out["split"].notna().all()


def test_eval_sets_get_their_own_split(manifest: pd.DataFrame) -> None:
    bench = make_manifest(6, seed=9, source="bench")
    bench["utt_id"] = "bench/" + bench["utt_id"]
    bench["eval_set"] = np.where(np.arange(len(bench)) % 2 == 0, "bench", "other")
    df = pd.concat([manifest, bench], ignore_index=True)
    out = assign_splits(df, SplitParams())
    is_eval = out["eval_set"] != ""
    assert (out.loc[is_eval, "split"] == "eval:" + out.loc[is_eval, "eval_set"]).all()
    assert set(out.loc[~is_eval, "split"]) == set(SPLITS)
    # Eval rows do not influence the training-pool assignment.
    alone = assign_splits(manifest, SplitParams())
    assert out.loc[~is_eval, "split"].tolist() == alone["split"].tolist()


def test_eval_speaker_shared_with_pool_stays_in_eval(manifest: pd.DataFrame) -> None:
    """An eval clip of a training speaker is still eval, never train/dev/test."""
    extra = manifest.iloc[:3].copy()
    extra["utt_id"] = "ev/" + extra["utt_id"]
    extra["eval_set"] = "bench"
    out = assign_splits(pd.concat([manifest, extra], ignore_index=True), SplitParams())
    assert (out["split"].iloc[-3:] == "eval:bench").all()
    report = split_report(out)
    assert report["leakage"]["n_shared_speakers"] == 0


@pytest.mark.parametrize("n_speakers", [1, 2])
def test_too_few_speakers_raises_helpfully(n_speakers: int) -> None:
    df = make_manifest(6, seed=0)
    keep = sorted(df.loc[df["label"] == "spoof", "speaker"].unique())[:n_speakers]
    df = df[df["speaker"].isin(keep)]
    with pytest.raises(ValueError) as info:
        assign_splits(df, SplitParams())
    message = str(info.value)
    assert f"{n_speakers} speakers" in message
    assert "too few" in message
    assert "split" in message


def test_empty_pool_gives_empty_series() -> None:
    df = make_manifest(3).iloc[:0]
    assert stratified_group_split(df, SplitParams()).empty


def test_split_report_counts_add_up(manifest: pd.DataFrame) -> None:
    bench = make_manifest(4, seed=5, source="bench")
    bench["utt_id"] = "bench/" + bench["utt_id"]
    bench["speaker"] = "b_" + bench["speaker"]
    bench["eval_set"] = "bench"
    df = pd.concat([manifest, bench], ignore_index=True)
    out = assign_splits(df, SplitParams())
    report = split_report(out)
    assert set(report["splits"]) == {"train", "dev", "test", "eval:bench"}
    assert sum(s["n_clips"] for s in report["splits"].values()) == len(df)
    for name, stats in report["splits"].items():
        part = out[out["split"] == name]
        assert stats["n_bonafide"] + stats["n_spoof"] == stats["n_clips"] == len(part)
        assert sum(stats["attacks"].values()) == stats["n_spoof"]
        assert "-" not in stats["attacks"]
        assert sum(stats["sources"].values()) == stats["n_clips"]
        assert stats["n_speakers"] == part["speaker"].nunique()
    assert sum(report["splits"][s]["n_speakers"] for s in SPLITS) == manifest["speaker"].nunique()
    assert report["leakage"]["shared_speakers"] == [] and report["leakage"]["n_shared_speakers"] == 0
    assert report["leakage"]["n_shared_audio"] == 0
    assert report["leakage"]["eval_sets"] == {
        "bench": {"n_clips_in_training_pool": 0, "examples": [], "n_shared_speakers": 0}
    }
    assert leaks(report) == []


def test_split_report_detects_leakage(manifest: pd.DataFrame) -> None:
    out = assign_splits(manifest, SplitParams())
    speaker = out.loc[out["split"] == "train", "speaker"].iloc[0]
    leaked = out.copy()
    leaked.loc[leaked.index[(leaked["speaker"] == speaker)][0], "split"] = "test"
    report = split_report(leaked)
    assert report["leakage"]["shared_speakers"] == [speaker] and report["leakage"]["n_shared_speakers"] == 1
    assert len(leaks(report)) == 1 and speaker in leaks(report)[0]


def _with_hashes(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["content_hash"] = [f"h{i}" for i in range(len(out))]
    return out


def test_identical_audio_of_two_speakers_is_kept_in_one_split(manifest: pd.DataFrame) -> None:
    df = _with_hashes(manifest)
    speakers = sorted(df["speaker"].unique())
    # The same recording filed under three speakers (a corpus that ships one file twice): the
    # three speakers must form one group, transitively.
    a = df.index[df["speaker"] == speakers[0]][0]
    b = df.index[df["speaker"] == speakers[7]][0]
    c = df.index[df["speaker"] == speakers[20]][0]
    d = df.index[df["speaker"] == speakers[7]][1]
    df.loc[[a, b], "content_hash"] = "dup1"
    df.loc[[d, c], "content_hash"] = "dup2"
    groups = leak_groups(df)
    merged = set(groups[df["speaker"].isin([speakers[0], speakers[7], speakers[20]])])
    assert merged == {speakers[0]}
    assert groups[df["speaker"] == speakers[1]].nunique() == 1 and groups.nunique() == len(speakers) - 2
    for seed in range(4):
        out = assign_splits(df, SplitParams(seed=seed))
        assert out.loc[df["speaker"].isin([speakers[0], speakers[7], speakers[20]]), "split"].nunique() == 1
        assert split_report(out)["leakage"]["n_shared_audio"] == 0


def test_split_report_detects_identical_audio_across_splits(manifest: pd.DataFrame) -> None:
    out = assign_splits(_with_hashes(manifest), SplitParams())
    train_row = out.index[out["split"] == "train"][0]
    test_row = out.index[out["split"] == "test"][0]
    out.loc[test_row, "content_hash"] = out.loc[train_row, "content_hash"]
    report = split_report(out)
    assert report["leakage"]["n_shared_speakers"] == 0
    assert report["leakage"]["n_shared_audio"] == 1
    assert sorted(report["leakage"]["shared_audio_examples"][0]) == sorted(
        [out.loc[train_row, "utt_id"], out.loc[test_row, "utt_id"]]
    )
    assert any("identical clips" in line for line in leaks(report))


def test_eval_set_with_training_audio_is_reported(manifest: pd.DataFrame) -> None:
    bench = _with_hashes(make_manifest(4, seed=5, source="bench"))
    bench["utt_id"] = "bench/" + bench["utt_id"]
    bench["speaker"] = "b_" + bench["speaker"]
    bench["eval_set"] = "bench"
    pool = _with_hashes(manifest)
    bench["content_hash"] = "e" + bench["content_hash"]
    bench.loc[bench.index[:2], "content_hash"] = pool["content_hash"].iloc[:2].to_numpy()
    out = assign_splits(pd.concat([pool, bench], ignore_index=True), SplitParams())
    report = split_report(out)
    overlap = report["leakage"]["eval_sets"]["bench"]
    assert overlap["n_clips_in_training_pool"] == 2 and len(overlap["examples"]) == 2
    assert any("eval set 'bench'" in line for line in leaks(report))


def test_official_strategy_keeps_partitions_and_splits_the_rest_by_speaker(manifest: pd.DataFrame) -> None:
    corpus = make_manifest(12, seed=9, source="corpus")
    corpus["utt_id"] = "corpus/" + corpus["utt_id"]
    corpus["speaker"] = "c_" + corpus["speaker"]
    speakers = sorted(corpus["speaker"].unique())
    part = {s: ("train", "dev", "eval")[i % 3] for i, s in enumerate(speakers)}
    corpus["partition"] = corpus["speaker"].map(part)
    pool = manifest.assign(partition="")
    out = assign_splits(pd.concat([corpus, pool], ignore_index=True), SplitParams(strategy="official"))
    official = out[out["source"] == "corpus"]
    assert (official["split"] == official["partition"].map({"train": "train", "dev": "dev", "eval": "test"})).all()
    rest = out[out["source"] == "synth"]
    assert set(rest["split"]) == set(SPLITS)
    assert (rest.groupby("speaker")["split"].nunique() == 1).all()
    with pytest.raises(ValueError, match="unknown partition"):
        assign_splits(corpus.assign(partition="validation"), SplitParams(strategy="official"))


def _pool(n_speakers: int = 30, seed: int = 0) -> pd.DataFrame:
    """Each speaker: 4 bona fide clips and one spoof per attack A01..A05, spoofs sharing the speaker."""
    rows = []
    for s in range(n_speakers):
        for i in range(4):
            rows.append({"utt_id": f"s{s}_b{i}", "speaker": f"s{s}", "label": "bonafide", "attack": "-"})
        for a in range(1, 6):
            rows.append({"utt_id": f"s{s}_A0{a}", "speaker": f"s{s}", "label": "spoof", "attack": f"A0{a}"})
    df = pd.DataFrame(rows)
    df["eval_set"], df["source"] = "", "demo"
    return df


def test_random_split_is_stratified_but_leaks_speakers() -> None:
    df = _pool()
    out = assign_splits(df, SplitParams(strategy="random", seed=1))
    assert (out.groupby("speaker")["split"].nunique() > 1).any(), "random is not speaker-disjoint"
    for split, frac in (("train", 0.6), ("dev", 0.2), ("test", 0.2)):
        part = out[out["split"] == split]
        for attack in ("-", "A01", "A05"):
            share = (part["attack"] == attack).sum() / (df["attack"] == attack).sum()
            assert share == pytest.approx(frac, abs=0.02)
    assert out["split"].equals(assign_splits(df, SplitParams(strategy="random", seed=1))["split"])


def test_unseen_attacks_appear_only_in_test_and_speakers_stay_apart() -> None:
    df = _pool()
    out = assign_splits(df, SplitParams(strategy="unseen_attacks", unseen_attacks=("A03",)))
    assert set(out.loc[out["attack"] == "A03", "split"]) <= {"test", "excluded"}
    assert (out.loc[out["attack"] == "A03", "split"] == "test").any()
    kept = out[out["split"].isin(["train", "dev", "test"])]
    assert (kept.groupby("speaker")["split"].nunique() == 1).all()
    assert "A03" not in set(out.loc[out["split"].isin(["train", "dev"]), "attack"])
    report = split_report(out)
    assert report["leakage"]["n_shared_speakers"] == 0 and "excluded" in report["splits"]


def test_unseen_attack_fraction_is_seeded_and_validated() -> None:
    from deepfake_audio.split import choose_unseen_attacks

    df = _pool()
    p = SplitParams(strategy="unseen_attacks", unseen_attack_fraction=0.4, seed=3)
    chosen = choose_unseen_attacks(df, p)
    assert len(chosen) == 2 and chosen == choose_unseen_attacks(df, p)
    with pytest.raises(ValueError, match="every attack"):
        choose_unseen_attacks(
            df, SplitParams(strategy="unseen_attacks", unseen_attacks=("A01", "A02", "A03", "A04", "A05"))
        )
    with pytest.raises(ValueError, match="A09"):
        choose_unseen_attacks(df, SplitParams(strategy="unseen_attacks", unseen_attacks=("A09",)))
    with pytest.raises(ParamError, match="unseen_attack_fraction"):
        SplitParams(strategy="unseen_attacks").validate("split")
    with pytest.raises(ParamError, match="strategy"):
        SplitParams(unseen_attacks=("A01",)).validate("split")


def test_split_stage_fails_on_a_leak_and_writes_nothing(tmp_path) -> None:
    """Official partitions that share a speaker: the stage stops, names the leak, writes no output."""
    from stages.split import main

    corpus = make_manifest(12, seed=9, source="corpus")
    corpus["content_hash"] = [f"h{i}" for i in range(len(corpus))]
    corpus["partition"] = np.where(
        np.arange(len(corpus)) % 3 == 0, "eval", np.where(np.arange(len(corpus)) % 3 == 1, "dev", "train")
    )
    corpus.to_parquet(tmp_path / "manifest.parquet")
    (tmp_path / "params.yaml").write_text("split:\n  strategy: official\n")
    argv = [
        "--manifest",
        str(tmp_path / "manifest.parquet"),
        "--out",
        str(tmp_path / "out.parquet"),
        "--report",
        str(tmp_path / "split.json"),
        "--params",
        str(tmp_path / "params.yaml"),
    ]
    with pytest.raises(RuntimeError, match="speakers in more than one split"):
        main(argv)
    assert not (tmp_path / "out.parquet").exists() and not (tmp_path / "split.json").exists()
    # The same corpus under the speaker-disjoint default passes and reports no leak.
    (tmp_path / "params.yaml").write_text("split:\n  strategy: stratified_group\n")
    main(argv)
    report = __import__("json").loads((tmp_path / "split.json").read_text())
    assert report["leakage"]["n_shared_speakers"] == 0 and report["leakage"]["n_shared_audio"] == 0
