"""tools/docs_results.py: generated results, stamped; the bench column; and the README's size and results block."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tools import docs_results
from tools.stamp import cpu_model, stamp

ROOT = Path(__file__).resolve().parents[1]
README_LIMIT_BYTES = 8192
DATE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")


def _block(test_eer: float, *, n_bonafide: int = 10, n_spoof: int = 20, **extra: object) -> dict:
    return {
        "eer": test_eer,
        "eer_ci": [test_eer - 0.05, test_eer + 0.05],
        "eer_ci_level": 0.95,
        "eer_threshold": 0.0,
        "accuracy": 1 - test_eer,
        "roc_auc": 0.9,
        "cllr": 0.7,
        "min_cllr": 0.5,
        "n_bonafide": n_bonafide,
        "n_spoof": n_spoof,
        "per_attack_eer": {"A01": 0.1, "A02": 0.3},
        **extra,
    }


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fake project: two models (one scored on a bench eval set), a split report, a README, in git."""
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "slow_model.json").write_text(json.dumps({"test": _block(0.3125)}))
    (metrics / "good_model.json").write_text(json.dumps({"test": _block(0.1), "bench_dev": _block(0.4567)}))
    (metrics / "summary.json").write_text(json.dumps({"models": {"not_a_model": {"test": _block(0.0)}}}))
    split = {
        "strategy": "stratified_group",
        "splits": {
            s: {
                "n_clips": n,
                "n_bonafide": n // 3,
                "n_spoof": n - n // 3,
                "n_speakers": k,
                "attacks": {"A01": 1},
                "sources": {"demo": n},
            }
            for s, n, k in (("train", 60, 6), ("dev", 21, 2), ("test", 30, 3))
        },
        "leakage": {"n_shared_speakers": 0, "n_shared_audio": 0, "eval_sets": {}},
    }
    (metrics / "split.json").write_text(json.dumps(split))
    (tmp_path / "README.md").write_text("# x\n\n<!-- results:begin -->\nold table\n<!-- results:end -->\n\nmore\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "fake")
    return tmp_path


def _run(root: Path, *extra: str) -> int:
    return docs_results.main(["--root", str(root), *extra])


def test_readme_table_is_generated_in_eer_order_with_bench_column(project: Path) -> None:
    assert _run(project) == 0
    readme = (project / "README.md").read_text()
    assert "old table" not in readme
    assert readme.startswith("# x\n\n<!-- results:begin -->\n") and readme.endswith("<!-- results:end -->\n\nmore\n")
    rows = [line for line in readme.splitlines() if line.startswith("| ")]
    assert rows[0] == "| model | demo test EER [95% CI] | bench_dev EER |"
    assert rows[2] == "| good_model | 10.00% [5.0, 15.0] | 45.67% |"
    assert rows[3] == "| slow_model | 31.25% [26.2, 36.2] | - |"
    assert len(rows) == 4  # summary.json and split.json are not models


BENCH_STAMP = {"commit": "fed4321", "date_utc": "2030-05-06 07:08 UTC", "cpu": "Bench CPU", "cores": 8}


def _write_bench(root: Path, models: dict[str, dict]) -> None:
    """A reports/bench.json as ``python -m tools.bench`` writes it."""
    (root / "reports").mkdir(exist_ok=True)
    (root / "reports" / "bench.json").write_text(
        json.dumps({"stamp": BENCH_STAMP, "labels": "../shared/bench/dev/labels.csv", "models": models})
    )


def _bench_entry(eer: float | None, demo: float | None, per_corpus: dict[str, float]) -> dict:
    return {
        "eer": eer,
        "per_corpus": per_corpus,
        "n_scored": 1090,
        "n_failed": 2,
        "demo_test_eer": demo,
        "bundle_training_key": "k",
    }


def test_bench_json_is_the_readme_bench_column(project: Path) -> None:
    _write_bench(
        project,
        {
            "good_model": _bench_entry(0.2222, 0.1, {"lvc_vc_demo": 0.3, "vctk": 0.05}),
            "slow_model": _bench_entry(0.3333, 0.3125, {"lvc_vc_demo": 0.4}),
            "bench_only": _bench_entry(None, None, {}),
        },
    )
    assert _run(project) == 0
    readme = (project / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| ")]
    assert rows[0] == "| model | demo test EER [95% CI] | bench EER |"
    # bench.json wins over the bench_dev eval set (45.67%) of the metrics
    assert rows[2] == "| good_model | 10.00% [5.0, 15.0] | 22.22% |"
    assert rows[3] == "| slow_model | 31.25% [26.2, 36.2] | 33.33% |"
    assert rows[4] == "| bench_only | - | - |"
    assert "`python -m tools.bench` on `../shared/bench/dev/labels.csv`" in readme
    assert "commit `fed4321`, 2030-05-06 07:08 UTC, Bench CPU (8 cores)" in readme

    page = (project / "docs" / "results.md").read_text()
    section = page[page.index("## External bench") :]
    assert "commit `fed4321`, 2030-05-06 07:08 UTC, Bench CPU (8 cores)" in section
    assert "| good_model | 10.00% | 22.22% | 1090 | 2 |" in section
    assert "| model | lvc_vc_demo | vctk |" in section
    assert "| good_model | 30.0% | 5.0% |" in section
    assert "| slow_model | 40.0% | - |" in section
    assert "Re-run" not in section  # the metrics are those the bench run read
    assert "there is no `reports/bench.json`" not in page


def test_bench_run_older_than_the_metrics_is_said(project: Path) -> None:
    _write_bench(project, {"slow_model": _bench_entry(0.3, 0.2, {})})
    assert _run(project, "--no-readme") == 0
    page = (project / "docs" / "results.md").read_text()
    assert "The demo test EER of slow_model in `metrics/` differs from the one the bench run read" in page
    assert "### Bench EER per corpus" not in page  # no corpus with both classes


def test_without_bench_json_or_bench_set_the_column_is_not_measured(project: Path) -> None:
    (project / "metrics" / "good_model.json").write_text(json.dumps({"test": _block(0.1)}))
    assert _run(project) == 0
    rows = [line for line in (project / "README.md").read_text().splitlines() if line.startswith("| ")]
    assert rows[2] == "| good_model | 10.00% [5.0, 15.0] | - |"
    page = (project / "docs" / "results.md").read_text()
    assert "there is no `reports/bench.json`: bench EER is not measured here" in page
    assert "## External bench" not in page


def test_stamp_names_commit_date_and_machine(project: Path) -> None:
    commit = _git(project, "rev-parse", "--short", "HEAD")
    assert _run(project) == 0
    page = (project / "docs" / "results.md").read_text()
    readme = (project / "README.md").read_text()
    s = stamp(project)
    for text in (page, readme):
        assert f"commit `{commit}`" in text  # the files it rewrites do not make the tree dirty
        assert DATE.search(text)
        assert f"{cpu_model()} ({s['cores']} cores)" in text
    assert f"the files committed at `{commit}`" in page


def test_dirty_tree_and_modified_metrics_are_said(project: Path) -> None:
    path = project / "metrics" / "slow_model.json"
    path.write_text(json.dumps({"test": _block(0.25)}))
    assert _run(project) == 0
    page = (project / "docs" / "results.md").read_text()
    assert "+dirty`" in page
    assert "workspace files that differ from the last commit" in page
    assert "| slow_model | test | 25.00% [20.0, 30.0] |" in page


def test_results_page_has_every_set_splits_and_not_measured(project: Path) -> None:
    bench = project / "reports" / "benchmarks"
    bench.mkdir(parents=True)
    (bench / "predict.json").write_text(
        json.dumps(
            {
                "model": "cnn_lstm",
                "threads": 1,
                "latency_median_ms": 8.31,
                "latency_p90_ms": 9.0,
                "files": 200,
                "files_per_s": 190.0,
                "stream_realtime": 150.0,
                "stamp": {"commit": "abc1234", "date_utc": "2030-01-02 03:04 UTC", "cpu": "Some CPU", "cores": 16},
            }
        )
    )
    (bench / "features_memory.json").write_text(
        json.dumps(
            {
                "results": [
                    {
                        "clips": 1000,
                        "wall_s": 12.0,
                        "parent_peak_kb": 480 * 1024,
                        "worker_peak_kb": 350 * 1024,
                        "total_peak_kb": None,
                    }
                ]
            }
        )
    )
    assert _run(project) == 0
    page = (project / "docs" / "results.md").read_text()
    assert "Measured on an unstamped run (commit and machine unknown)." in page
    assert "- 1000 clips: 12.0 s; peak RSS parent 480 MiB, largest worker 350 MiB, sampled total - MiB" in page
    assert "| good_model | test | 10.00% [5.0, 15.0] | 90.00% | 0.900 | 0.700 | 0.500 |" in page
    assert "| good_model | bench_dev | 45.67% [40.7, 50.7] |" in page
    assert "| all | 111 | 37 | 74 | 11 |" in page  # totals over the splits
    assert "From params: not measured (no `params.yaml`)" in page
    assert "From the outputs in `data/features/`: not measured" in page
    assert "Measured at commit `abc1234`, 2030-01-02 03:04 UTC, Some CPU (16 cores)." in page
    assert "median 8.3 ms, p90 9.0 ms" in page
    assert "### `benchmarks/features.py`\n\nnot measured." in page


def test_feature_counts_come_from_the_registry(project: Path) -> None:
    (project / "params.yaml").write_text(
        "features:\n  frame_groups: [mfcc]\n  utterance_groups: [rms]\n  mfcc: {n_mfcc: 20, deltas: 0}\n"
        "model:\n  sequence_groups: [mfcc]\n  image_group: mfcc\n"
    )
    assert _run(project, "--no-readme") == 0
    page = (project / "docs" / "results.md").read_text()
    assert "- frame table: 20 rows per frame" in page
    assert "- utterance table (XGBoost): 2 columns (mean, std" in page
    assert "| rms | 1 | no (utterance statistics only) |" in page


def test_no_metrics_says_not_measured(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("<!-- results:begin --><!-- results:end -->\n")
    assert _run(tmp_path) == 0
    assert "| not measured | - | - |" in (tmp_path / "README.md").read_text()
    assert "not measured (no `metrics/<model>.json`)" in (tmp_path / "docs" / "results.md").read_text()


def test_readme_without_markers_is_an_error(project: Path) -> None:
    (project / "README.md").write_text("# no markers\n")
    assert _run(project) == 2
    assert not (project / "docs" / "results.md").exists()


def test_real_readme_fits_in_8_kb_and_has_the_results_block() -> None:
    readme = ROOT / "README.md"
    size = readme.stat().st_size
    assert size <= README_LIMIT_BYTES, (
        f"README.md is {size} bytes; keep it within {README_LIMIT_BYTES} (move detail to docs/)"
    )
    text = readme.read_text(encoding="utf-8")
    assert text.count(docs_results.BEGIN) == 1 and text.count(docs_results.END) == 1


def _committed_metrics(tmp_path: Path) -> Path:
    """A copy of ``metrics/`` as committed at HEAD (a local `dvc repro` may have changed the workspace's)."""
    try:
        names = _git(ROOT, "ls-tree", "--name-only", "HEAD", "metrics/").splitlines()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git work tree")
    out = tmp_path / "metrics"
    out.mkdir()
    for name in names:
        if name.endswith(".json"):
            (out / Path(name).name).write_text(_git(ROOT, "show", f"HEAD:{name}"))
    return out


def _committed_bench(tmp_path: Path) -> dict | None:
    """``reports/bench.json`` as committed at HEAD, or ``None`` when it is not committed."""
    if not _git(ROOT, "ls-tree", "--name-only", "HEAD", "reports/bench.json"):
        return None
    path = tmp_path / "bench.json"
    path.write_text(_git(ROOT, "show", "HEAD:reports/bench.json"))
    return docs_results.bench_report(path)


def test_real_readme_table_matches_the_committed_metrics(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index(docs_results.BEGIN) + len(docs_results.BEGIN) : text.index(docs_results.END)]
    models = docs_results.model_metrics(_committed_metrics(tmp_path))
    expected = docs_results.readme_table(models, stamp(ROOT), _committed_bench(tmp_path))
    rows = [line for line in block.splitlines() if line.startswith("| ")]
    assert rows == [line for line in expected if line.startswith("| ")], (
        "README's results table does not match the committed metrics/ and reports/bench.json: "
        "run `python -m tools.docs_results`"
    )
