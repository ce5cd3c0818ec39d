"""Rebuild the warehouse in a loop, as the pipeline does, while a test reads it from another process.

    python rebuild_warehouse.py REGISTRY[,REGISTRY...] STORE COUNT

Alternates between the registries (so readers can tell consecutive builds apart), prints
`built <i>` after each swap and `done` at the end.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root

from storage.layout import FeatureStore  # noqa: E402
from storage.warehouse import build_warehouse  # noqa: E402
from synergy.registry import load_registry  # noqa: E402


def main() -> None:
    registry_paths, store_root, count = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3])
    store, registries = FeatureStore(store_root), [load_registry(p) for p in registry_paths]
    print("started", flush=True)
    for i in range(count):
        build_warehouse(store, registries[i % len(registries)])
        print(f"built {i}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
