"""The UI, tested for real: dagster-webserver as a subprocess, GraphQL, a launched run, headless Chromium.

One test, in the order a user meets the UI: the webserver starts on the project's workspace.yaml
against a tiny registry and store, GraphQL lists the project's assets and partitions, a dataset
partition of `dataset_examples` is materialized through the GraphQL client (as the launchpad does)
and lands in the store, and the global asset lineage page renders every asset in Chromium.

Set SYNERGY_UI_SCREENSHOT_DIR to also copy the screenshot there as `asset-graph.png` (that is how
docs/img/asset-graph.png is made).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import time
import urllib.parse
from pathlib import Path

import pytest
from dagster_graphql import DagsterGraphQLClient

from ui_support import Webserver, chromium_binary, graphql

pytestmark = [pytest.mark.ui,
              # dagster_graphql 1.13 calls gql 4 the old way; not ours to fix
              pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning")]

ASSETS = ["dataset_examples", "backbone_weights", "embeddings", "analysis", "ensembles", "warehouse"]
DATASET = "fmnist-tiny"  # tests/conftest.py's tiny registry
BACKBONES = ["tiny-vit", "tiny-rn"]
LOCATION = "clip_synergy"  # workspace.yaml
REPOSITORY = "__repository__"  # a Definitions object's repository
SCREENSHOT_ENV = "SYNERGY_UI_SCREENSHOT_DIR"
WINDOW = "1920,1080"  # at 1600 px wide the fitted graph is zoomed out to name-only nodes; 1920 shows full ones
RUN_TIMEOUT_S = 300
SERVER_TIMEOUT_S = 180

ASSET_NODES = """{ assetNodes { assetKey { path } groupName isPartitioned partitionKeys
    partitionDefinition { type dimensionTypes { name type } }
    partitionStats { numMaterialized numPartitions numFailed } } }"""

ADD_PARTITION = """mutation($selector: RepositorySelector!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: "backbone", partitionKey: $key) {
    __typename ... on PythonError { message } ... on UnauthorizedError { message } } }"""


def asset_nodes(port: int) -> dict[str, dict]:
    return {"/".join(n["assetKey"]["path"]): n for n in graphql(port, ASSET_NODES)["assetNodes"]}


def rendered_asset_names(dom: str) -> set[str]:
    """Names shown in the graph's asset nodes: the first text inside each element whose CSS-module class
    is `AssetNode_assetName…` (zoomed out it holds the bare name, zoomed in an icon and then the name)."""
    dom = re.sub(r"<script\b.*?</script>", "", dom, flags=re.S)
    names = set()
    for m in re.finditer(r'class="[^"]*\bAssetNode_assetName[^"]*"[^>]*>', dom):
        text = re.sub(r"<[^>]+>", "\n", dom[m.end():m.end() + 5000])
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        names.add(html.unescape(first))
    return names


def lineage_url(base: str, groups: list[str]) -> str:
    """The global asset lineage with every group expanded (the UI keeps that in `?expanded=`).

    Group ids are `global@global:<group>`, or `<repository>@<location>:<group>` when the UI shows groups
    per code location; both are passed, an unknown id is ignored.
    """
    ids = [f"global@global:{g}" for g in groups] + [f"{REPOSITORY}@{LOCATION}:{g}" for g in groups]
    return f"{base}/asset-groups?" + urllib.parse.urlencode({"expanded": ",".join(ids)})


@pytest.fixture
def webserver(tiny_registry, tmp_path):
    server = Webserver(tmp_path, tiny_registry, tmp_path / "store")
    try:
        yield server.start()
    finally:
        server.stop()  # idempotent; the test itself asserts that nothing is left


def test_ui_serves_assets_runs_a_partition_and_renders_the_graph(webserver, tmp_path):
    timings = {}
    t0 = time.monotonic()

    # ---------------------------------------------------------------- 1. the server answers
    timings["server_ready_s"] = webserver.wait_ready(SERVER_TIMEOUT_S)
    port = webserver.port

    # ---------------------------------------------------------------- 2. assets and partitions over GraphQL
    nodes = asset_nodes(port)
    assert set(ASSETS) <= set(nodes), f"asset keys missing from the UI: {sorted(set(ASSETS) - set(nodes))}"
    assert nodes["dataset_examples"]["partitionKeys"] == [DATASET]
    assert nodes["dataset_examples"]["partitionDefinition"]["type"] == "STATIC"
    assert nodes["analysis"]["partitionKeys"] == nodes["ensembles"]["partitionKeys"] == [DATASET]
    assert not nodes["warehouse"]["isPartitioned"]
    assert nodes["backbone_weights"]["partitionDefinition"]["type"] == "DYNAMIC"
    assert [(d["name"], d["type"]) for d in nodes["embeddings"]["partitionDefinition"]["dimensionTypes"]] == [
        ("backbone", "DYNAMIC"), ("dataset", "STATIC")]
    assert {n["groupName"] for n in nodes.values()} == {"features", "analysis", "ensembles", "warehouse"}

    # the backbone partitions are dynamic: without the daemon (no registry sensor) add them as the sensor would
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
    for key in BACKBONES:
        result = graphql(port, ADD_PARTITION, {"selector": selector, "key": key})["addDynamicPartition"]
        assert result["__typename"] == "AddDynamicPartitionSuccess", result
    nodes = asset_nodes(port)
    assert sorted(nodes["backbone_weights"]["partitionKeys"]) == sorted(BACKBONES)
    assert sorted(nodes["embeddings"]["partitionKeys"]) == sorted(f"{b}|{DATASET}" for b in BACKBONES)
    assert nodes["dataset_examples"]["partitionStats"]["numMaterialized"] == 0

    # ---------------------------------------------------------------- 3. a real partition run, launched remotely
    client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=60)
    run_id = client.submit_job_execution("examples_job", repository_location_name=LOCATION,
                                         repository_name=REPOSITORY, tags={"dagster/partition": DATASET})
    start, status = time.monotonic(), None
    while time.monotonic() - start < RUN_TIMEOUT_S:
        status = client.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(1)
    timings["run_s"] = time.monotonic() - start
    assert status == "SUCCESS", webserver.fail(f"examples_job run {run_id} ended as {status} "
                                               f"after {timings['run_s']:.0f}s")
    examples = webserver.store / "datasets" / f"dataset={DATASET}" / "data.parquet"
    assert examples.is_file() and examples.stat().st_size > 0, f"{examples} was not written"
    stats = asset_nodes(port)["dataset_examples"]["partitionStats"]
    assert (stats["numMaterialized"], stats["numPartitions"], stats["numFailed"]) == (1, 1, 0)

    # ---------------------------------------------------------------- 4. the asset graph in a real browser
    binary = chromium_binary()
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install chromium); GraphQL and the run were checked")
    url = lineage_url(webserver.url, sorted({n["groupName"] for n in nodes.values()}))
    start = time.monotonic()
    rendered: set[str] = set()
    for budget in (20000, 40000, 60000):  # a slow, busy machine may need more virtual time
        page = webserver.chromium(binary, url, tmp_path, "--dump-dom", window=WINDOW, budget_ms=budget)
        (tmp_path / "ui.html").write_text(page.stdout)
        rendered = rendered_asset_names(page.stdout)
        if set(ASSETS) <= rendered:
            break
    assert set(ASSETS) <= rendered, (f"asset nodes not rendered on {url}: missing {sorted(set(ASSETS) - rendered)} "
                                     f"(DOM in {tmp_path / 'ui.html'}; chromium stderr tail: {page.stderr[-1500:]})")

    shot = tmp_path / "ui.png"
    page = webserver.chromium(binary, url, tmp_path, f"--screenshot={shot}", window=WINDOW, budget_ms=budget)
    assert shot.is_file(), f"no screenshot written (chromium exit {page.returncode}): {page.stderr[-1500:]}"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 30_000, f"screenshot is only {shot.stat().st_size} bytes: a blank page?"
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == tuple(int(v) for v in WINDOW.split(","))
    timings["browser_s"] = time.monotonic() - start
    if os.environ.get(SCREENSHOT_ENV):
        target = Path(os.environ[SCREENSHOT_ENV])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target / "asset-graph.png")

    # ---------------------------------------------------------------- 5. nothing is left running
    left = webserver.stop()
    assert not left, f"processes left after stopping the webserver: {left}"
    timings["total_s"] = time.monotonic() - t0
    print("ui test timings:", {k: round(v, 1) for k, v in timings.items()})
