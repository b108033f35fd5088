"""Every fenced Python block of the README and of docs/ runs as written, in a fresh
process, from a working folder that holds what the blocks name: ``models/FSANet-100.pth``
(the authors' layout, deterministic weights), ``data/TrainDataset`` (generated) and a
Hugging Face cache with ``owner/fsanet`` (offline)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import cache_repo

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks():
    for page in PAGES:
        for number, match in enumerate(BLOCK.finditer(page.read_text()), 1):
            yield pytest.param(match.group(1), id=f"{page.relative_to(REPO)}:{number}")


def test_the_pages_have_python_blocks():
    assert len(list(_blocks())) >= 6  # the extraction itself works (a broken pattern would test nothing)


@pytest.fixture(scope="module")
def home(tmp_path_factory, authors_checkpoint) -> Path:
    from lib.FSANet import FSANet
    from utils.data.synthetic import write_dataset

    root = tmp_path_factory.mktemp("snippets")
    (root / "models").mkdir()
    os.link(authors_checkpoint, root / "models" / "FSANet-100.pth")
    torch.manual_seed(0)
    FSANet().save_pretrained(root / "pretrained")
    cache_repo(root / "hf_cache", "owner/fsanet", root / "pretrained")
    write_dataset(root / "data" / "TrainDataset", 4, (80, 72), "authors", seed=1)
    return root


@pytest.mark.parametrize("code", list(_blocks()))
def test_block_runs_as_written(code, home, tmp_path):
    for name in ("models", "data"):
        (tmp_path / name).symlink_to(home / name)
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        HF_HUB_CACHE=str(home / "hf_cache"),
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{code}\n--- stderr ---\n{done.stderr[-3000:]}"
