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
DATA = ROOT / "tests" / "data"  # in the repository: origin and licenses in tests/data/README.md
BRIDGE_ROOT = DATA / "bridge_debug"  # the real BridgeData V2 slice (Octo's debug dataset), an RLDS root
MIXTURES_MD = DATA / "MIXTURES.md"  # the published mixture facts the registry is checked against

# The suite runs whole: a test may skip only for a missing CUDA device (marked `gpu`). Any other skip
# (a missing file, a package not installed, ...) is turned into a failure that says why, so that a
# checkout or an install that lacks something can never pass with part of the suite silently left out.
ALLOWED_SKIP_MARK = "gpu"


def _skip_as_failure(report, where: str) -> None:
    reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (
        f"{where} was skipped ({reason}); only tests marked '{ALLOWED_SKIP_MARK}' may skip: "
        "the suite needs the whole repository and the test install (pip install -e '.[test]')"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and item.get_closest_marker(ALLOWED_SKIP_MARK) is None:
        _skip_as_failure(report, item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.skipped:  # a whole module skipped at import (pytest.importorskip at the top, ...)
        _skip_as_failure(report, collector.nodeid or "collection")


@pytest.fixture(scope="session")
def bridge_root() -> Path:
    assert (BRIDGE_ROOT / "bridge_dataset" / "1.0.0" / "dataset_info.json").exists(), (
        f"no Bridge slice at {BRIDGE_ROOT}"
    )
    return BRIDGE_ROOT


@pytest.fixture(scope="session")
def mixtures_md() -> Path:
    return MIXTURES_MD


@pytest.fixture(scope="session")
def registry():
    from manifests.registry import load_registry

    return load_registry()


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory) -> Path:
    """All 28 datasets, 2 train episodes each, generated once per test session."""
    from sources.sample import ensure_corpus

    return ensure_corpus(tmp_path_factory.mktemp("corpus") / "sample", episodes=2)
