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


def get_instance():
    import dagster as dg

    ensure_dagster_home()
    return dg.DagsterInstance.get()
