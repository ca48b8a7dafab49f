"""The Beam pipelines. Importing this package imports Beam quietly: Beam's BigQuery module logs
"apitools not found ..." through the root logger at import time (and, by doing so, installs a
root handler with logging.basicConfig) in every environment without the GCP extras, which this
pipeline does not use."""

import logging


def _import_beam_quietly() -> None:
    root = logging.getLogger()
    handlers = list(root.handlers)
    drop = logging.Filter()
    drop.filter = lambda record: not record.getMessage().startswith("apitools not found")
    root.addFilter(drop)
    try:
        import apache_beam  # noqa: F401
    except ImportError:  # the trainer side never imports beam_jobs; say nothing here
        pass
    finally:
        root.removeFilter(drop)
        root.handlers[:] = handlers  # the handler basicConfig added for that one warning


_import_beam_quietly()
