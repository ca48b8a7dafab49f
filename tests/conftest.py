import os
from pathlib import Path

import pytest

# Tests write and open RLDS with TFDS (TensorFlow) and load ZoeDepth with transformers (torch, whose
# compiler imports triton) in one process; both bundle LLVM, and triton imported after TensorFlow
# crashes the process. Loading triton first avoids it. The pipeline itself never imports TensorFlow.
try:
    import triton  # noqa: F401
except ImportError:
    pass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BRIDGE_ROOT = SHARED / "data" / "bridge_debug"


@pytest.fixture(scope="session")
def bridge_root() -> Path:
    if not (BRIDGE_ROOT / "bridge_dataset" / "1.0.0" / "dataset_info.json").exists():
        pytest.skip(f"the real Bridge slice is not at {BRIDGE_ROOT}")
    return BRIDGE_ROOT


@pytest.fixture(scope="session")
def registry():
    from manifests.registry import load_registry

    return load_registry()


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory) -> Path:
    """All 28 datasets, 2 train episodes each, generated once per test session."""
    from sources.sample import ensure_corpus

    return ensure_corpus(tmp_path_factory.mktemp("corpus") / "sample", episodes=2)
