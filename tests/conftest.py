"""Shared fixtures: the reference files copied from the authors' model (tests/fixtures)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(FIXTURES))

from official_weights import recipe_state_dict  # noqa: E402  (fixture data recipe)


def load_manifest(name: str) -> Dict[str, list]:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="session")
def authors_manifest() -> Dict[str, list]:
    """Every key and shape of the authors' FSANet state dict (1,133 tensors)."""
    return load_manifest("official_fsanet_keys.json")


@pytest.fixture(scope="session")
def authors_recipe(authors_manifest) -> Dict[str, torch.Tensor]:
    """The deterministic stand-in weights in the authors' key names (radius 24)."""
    return recipe_state_dict(authors_manifest, radius=24.0)


@pytest.fixture(scope="session")
def authors_checkpoint(authors_recipe, tmp_path_factory) -> Path:
    """A file in the released checkpoint's outer layout (trained under DataParallel)."""
    path = tmp_path_factory.mktemp("authors") / "FSANet-100.pth"
    torch.save(
        {
            "model": {"module." + k: v for k, v in authors_recipe.items()},
            "opech": 99,
            "optimizer": {},
            "loss": torch.tensor(0.0),
        },
        path,
    )
    return path


@pytest.fixture(scope="session")
def reference_outputs() -> Dict[str, np.ndarray]:
    """The authors' model's outputs on the recipe weights (eval mode)."""
    with np.load(FIXTURES / "fsanet_reference_outputs.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def faithful_model(authors_checkpoint):
    """The paper's FSANet with the recipe weights loaded through the loader, eval mode."""
    from lib.checkpoint import load_fsanet_weights
    from lib.FSANet import FSANet

    model = FSANet().eval()
    load_fsanet_weights(model, authors_checkpoint)
    return model


#: the small named configuration (lib/configs.py), for training tests.
TINY_MODEL_ARGS = ["--config", "fsanet_small"]


def train_argv(root: Path, data: Path, *extra: str) -> list:
    """train.py's flags for a fast CPU run on ``data``, writing under ``root``."""
    fast = ["--device", "cpu", "--workers", "0", "--no_progress", "--batchsize", "2", "--trainsize", "64"]
    fast += ["--random_backbones"]  # no ImageNet weights here: random encoders, said explicitly
    return ["--train_path", str(data), "--out_root", str(root), *fast, "--rates", "1", *TINY_MODEL_ARGS, *extra]


def start_train(argv: list, new_session: bool = False) -> "subprocess.Popen":
    """train.py ``argv`` in a process of its own (one thread), its output captured as text;
    ``new_session``: in a process group of its own, as a shell job or a SLURM step runs."""
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo))
    return subprocess.Popen(
        [sys.executable, str(repo / "train.py"), *argv],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=new_session,
    )


@pytest.fixture(scope="session")
def small_pth(tmp_path_factory) -> Path:
    """A seeded ``fsanet_small`` in this project's checkpoint layout (a module may define its own)."""
    from lib.configs import get_config
    from lib.FSANet import build_fsanet
    from lib.saving import save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("small") / "small.pth"
    save_checkpoint(path, build_fsanet(get_config("fsanet_small")).eval())
    return path


def train_args(root: Path, data: Path, *extra: str):
    """The TrainConfig of :func:`train_argv`."""
    from train import parse_config

    return parse_config(train_argv(root, data, *extra))


@pytest.fixture(scope="session")
def synthetic_train(tmp_path_factory) -> Path:
    """4 generated 80×72 pairs in the authors' layout."""
    from utils.data.synthetic import write_dataset

    root = tmp_path_factory.mktemp("synthetic") / "TrainDataset"
    write_dataset(root, count=4, size=(80, 72), layout="authors", seed=1)
    return root


if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n 2 on 2 cores: one thread per worker, or the workers' OpenMP threads wait on each other
    torch.set_num_threads(1)


#: the commit a test's offline Hugging Face cache pretends to hold.
REVISION = "0123456789abcdef0123456789abcdef01234567"


def cache_repo(cache: Path, repo_id: str, folder: Path, revision: str = REVISION) -> Path:
    """Put a pretrained folder into ``cache`` as huggingface_hub lays out a downloaded repository."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for name in ("model.safetensors", "config.json", "README.md"):
        if (folder / name).exists():
            shutil.copy2(folder / name, snapshot / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return snapshot
