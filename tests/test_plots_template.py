"""The offline DVC plots template renders a self-contained HTML page.

Builds a throw-away git+dvc repo configured the same way as this project's
``.dvc/config`` (``plots.html_template = ../dvc_plots/offline_template.html``),
runs ``dvc plots show -o <dir>`` and checks the result needs no network.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = REPO_ROOT / "dvc_plots" / "offline_template.html"
# Same value as in the project's .dvc/config (relative to the .dvc/ directory).
TEMPLATE_CONFIG_VALUE = "../dvc_plots/offline_template.html"

REMOTE_SCRIPT_RE = re.compile(r"""<script\b[^>]*\bsrc\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)
SCRIPT_BLOCK_RE = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL | re.IGNORECASE)

# Distinctive values so we can find the plot data in the rendered page.
CSV = "step,loss\n0,0.9137\n1,0.6482\n2,0.4273\n3,0.3391\n"
DVC_YAML = """\
plots:
  - train_loss.csv:
      x: step
      y: loss
      title: offline-template-check
"""


def _dvc_cmd() -> list[str]:
    exe = Path(sys.executable).parent / ("dvc.exe" if os.name == "nt" else "dvc")
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("dvc")
    if found:
        return [found]
    return [sys.executable, "-m", "dvc"]


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}"
    return proc.stdout


def test_template_file_is_well_formed():
    assert TEMPLATE.is_file(), f"missing {TEMPLATE}; run tools/build_plots_template.py"
    text = TEMPLATE.read_text(encoding="utf-8")
    # dvc-render requires {plot_divs}; {scripts} would inject CDN <script src>.
    assert text.count("{plot_divs}") == 1
    assert "{scripts}" not in text
    assert '<meta charset="utf-8">' in text
    assert not REMOTE_SCRIPT_RE.search(text)
    blocks = SCRIPT_BLOCK_RE.findall(text)
    assert len(blocks) == 3
    for pkg in ("vega@", "vega-lite@", "vega-embed@"):
        assert any(f'data-package="{pkg}' in b for b in blocks), pkg
        assert re.search(rf"{re.escape(pkg)}\S+ package/build/\S+\.min\.js sha256=[0-9a-f]{{64}}", text), pkg


def test_dvc_plots_show_renders_offline(tmp_path):
    pytest.importorskip("dvc", reason="dvc is not importable in this environment")
    assert TEMPLATE.is_file(), f"missing {TEMPLATE}; run tools/build_plots_template.py"

    repo = tmp_path / "repo"
    repo.mkdir()
    env = dict(os.environ)
    env.update(
        DVC_NO_ANALYTICS="1",
        DVC_GLOBAL_CONFIG_DIR=str(tmp_path / "dvc-global"),
        DVC_SYSTEM_CONFIG_DIR=str(tmp_path / "dvc-system"),
        DVC_SITE_CACHE_DIR=str(tmp_path / "dvc-site-cache"),
        GIT_CONFIG_NOSYSTEM="1",
    )
    dvc = _dvc_cmd()

    _run(["git", "init", "-q"], repo, env)
    _run([*dvc, "init", "-q"], repo, env)
    _run([*dvc, "config", "core.analytics", "false"], repo, env)
    _run([*dvc, "config", "plots.html_template", TEMPLATE_CONFIG_VALUE], repo, env)

    (repo / "dvc_plots").mkdir()
    shutil.copy2(TEMPLATE, repo / "dvc_plots" / "offline_template.html")
    (repo / "train_loss.csv").write_text(CSV, encoding="utf-8")
    (repo / "dvc.yaml").write_text(DVC_YAML, encoding="utf-8")

    out_dir = repo / "plots_out"
    _run([*dvc, "plots", "show", "-o", str(out_dir)], repo, env)
    html_file = out_dir / "index.html"
    assert html_file.is_file()
    html = html_file.read_text(encoding="utf-8")

    # The inlined libraries (from our template, verbatim) are in the page.
    template = TEMPLATE.read_text(encoding="utf-8")
    for block in SCRIPT_BLOCK_RE.findall(template):
        assert block in html
    assert "globalThis:t||self).vega={}" in html  # vega UMD build
    assert "self).vegaLite={}" in html  # vega-lite UMD build
    assert "self).vegaEmbed=" in html  # vega-embed UMD build

    # Nothing is loaded from the network.
    assert not REMOTE_SCRIPT_RE.search(html), REMOTE_SCRIPT_RE.search(html).group(0)
    assert "cdn.jsdelivr.net" not in html
    for placeholder in ("{plot_divs}", "{scripts}", "{refresh_tag}"):
        assert placeholder not in html

    # The plot itself (spec + data) was embedded.
    assert "vegaEmbed('#" in html
    assert "offline-template-check" in html
    for value in ("0.9137", "0.6482", "0.4273", "0.3391"):
        assert value in html
