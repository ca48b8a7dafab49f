"""The install's extras that code checks for before it needs them, each with the import names it
brings (pyproject.toml's optional dependencies; a test checks both agree). `[worker]` is the main job
without depth; these add to it. Code that needs one asks `missing(extra)` first and says in one line
what to install, rather than failing on an import deep inside a run."""

from __future__ import annotations

import importlib.util

# extra -> (what it is for, the import names of its packages that the code checks)
EXTRAS = {
    "depth": ("the depth model (ZoeDepth)", ("torch", "transformers")),
    "text": ("--text-tokenizer", ("transformers",)),
    "sample": (
        "writing the built-in sample corpus (TFDS writes with TensorFlow)",
        ("tensorflow", "tensorflow_datasets"),
    ),
    "plots": ("grids.inspect's plots", ("matplotlib",)),
    "convert": (
        "python -m sources.convert (TFDS writes RLDS with TensorFlow; h5py reads HDF5 episodes)",
        ("tensorflow", "tensorflow_datasets", "h5py"),
    ),
}


def installed(name: str) -> bool:
    """Whether a top-level package can be imported, without importing it (TensorFlow or torch take
    seconds, and TensorFlow must never load into a job's process)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a finder that refuses the name; a module entry without a spec
        return False


def missing(extra: str) -> list[str]:
    """The import names of the extra's packages that are not installed."""
    return [name for name in EXTRAS[extra][1] if not installed(name)]


def install_hint(extra: str) -> str:
    """The command that adds the extra to the worker install (each is used by the pipeline's commands)."""
    return f"pip install '.[worker,{extra}]'"
