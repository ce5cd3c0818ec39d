"""The project's Dagster instance: DAGSTER_HOME inside the project (git-ignored), config from config/dagster.yaml."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HOME = PROJECT_ROOT / ".dagster_home"
CONFIG = PROJECT_ROOT / "config" / "dagster.yaml"


def ensure_dagster_home() -> Path:
    """Point DAGSTER_HOME at the project's folder unless the user chose one; seed its dagster.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(DEFAULT_HOME))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists() and CONFIG.exists():
        shutil.copy(CONFIG, home / "dagster.yaml")
    return home


# The embeddings asset's pool (assets/extraction.py): one extraction at a time by default (the GPU).
EXTRACTION_POOL = "extraction"


def ensure_pool_limits(instance) -> None:
    """Give the extraction pool its row in the instance, with dagster.yaml's `default_limit`.

    Dagster's run queue only enforces a pool it already knows: on a fresh instance the pool row is
    created by the same queue pass that dequeues the first runs, so the first extraction runs all
    start at once (seen with two runs the automation sensor requested together). Creating the row
    up front, still marked as coming from the default, closes that gap; a limit set by hand
    (`dagster instance concurrency set extraction N`, or the UI) is left alone.
    """
    storage = instance.event_log_storage
    if not instance.global_op_concurrency_default_limit or not storage.supports_global_concurrency_limits:
        return
    if EXTRACTION_POOL not in storage.get_concurrency_keys():
        storage.initialize_concurrency_limit_to_default(EXTRACTION_POOL)


def get_instance():
    import dagster as dg

    ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    ensure_pool_limits(instance)
    return instance
