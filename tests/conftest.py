from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import build_downstream, build_v11


@pytest.fixture(scope="session")
def _tiny_downstream(tmp_path_factory) -> Path:
    return build_downstream(tmp_path_factory.mktemp("tiny") / "downstream")


@pytest.fixture(scope="session")
def _tiny_v11(tmp_path_factory) -> Path:
    return build_v11(tmp_path_factory.mktemp("tiny") / "v11")


@pytest.fixture
def downstream(_tiny_downstream, tmp_path) -> Path:
    """A fresh copy of a 4-location downstream dataset with 3 tasks, free to break."""
    return Path(shutil.copytree(_tiny_downstream, tmp_path / "downstream"))


@pytest.fixture
def v11(_tiny_v11, tmp_path) -> Path:
    """A fresh copy of a small v1.1 dataset (train: 2 files, val: 1 file, 2 samples each)."""
    return Path(shutil.copytree(_tiny_v11, tmp_path / "v11"))


@pytest.fixture(scope="session")
def sample_downstream(tmp_path_factory) -> Path:
    from neuco_io.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("sample") / "downstream", locations=5, seed=3).root


@pytest.fixture(scope="session")
def sample_v11(tmp_path_factory) -> Path:
    from neuco_io.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("sample") / "v11", layout="v1.1", locations=7, seed=3,
                        samples_per_file=3).root
