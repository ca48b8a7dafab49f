"""Where a dataset's RLDS files are: a data root from the command line (`--data-dir`) or from a
mixture file (`data_dir:`), and whether it is the built-in sample corpus (synthetic data).

    root, synthetic = data_root(None)                  # the built-in sample corpus, generated once
    root, synthetic = data_root("builtin:sample")      # the same, named in a mixture file
    root, synthetic = data_root("gs://gresearch/robotics")
    is_synthetic(RLDSDataset(...))                     # the sample corpus, wherever it was copied to
"""

from __future__ import annotations

from manifests.registry import BUILTIN_SAMPLE
from sources.rlds import RLDSDataset
from storage import files

# What sources.sample writes into every dataset_info.json's description: the corpus is recognized by
# its content, also when it is given with --data-dir or copied elsewhere
SAMPLE_DESCRIPTION_MARK = "in its public RLDS schema (pipeline.sample)"


def data_root(spec: str | None) -> tuple[str, bool]:
    """(absolute root, True when it is the built-in sample corpus) of a root spec; None: the sample."""
    if spec is None or spec == BUILTIN_SAMPLE:
        from sources.sample import ensure_corpus

        return str(ensure_corpus()), True
    return files.absolute(spec), False


def is_synthetic(ds: RLDSDataset) -> bool:
    """True for a dataset of the sample corpus (synthetic movement, not training data)."""
    return SAMPLE_DESCRIPTION_MARK in str(ds.info.get("description", ""))
