"""The built-in sample corpus: small RLDS datasets in each registry dataset's real schema."""
from __future__ import annotations

import os
from pathlib import Path

CORPUS_VERSION = "1"


def default_corpus_dir() -> Path:
    """Where runs without --data-dir find (and first generate) the sample corpus."""
    root = os.environ.get("SPATIAL_PIPELINE_CACHE") or Path.home() / ".cache" / "spatial-action-pipeline"
    return Path(root) / f"sample-corpus-v{CORPUS_VERSION}"
