"""Bad images: convertible ones become RGB, broken ones become rejects, too many rejects stop the extraction."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
from reliability_support import FakeContext, noise, png_header_only, truncated_jpeg
from PIL import Image, ImageFile

from synergy.datasets import ExampleImages, collate_images, open_image
from synergy.errors import DatasetError


def _png(array: np.ndarray, mode: str | None = None, **save) -> bytes:
    buf = io.BytesIO()
    (Image.fromarray(array, mode) if mode else Image.fromarray(array)).save(buf, format="PNG", **save)
    return buf.getvalue()


def _image_bytes(img: Image.Image, fmt: str, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


GRAY = noise(1, 12, channels=1)
RGBA = np.dstack([noise(2, 12), np.where(np.arange(144).reshape(12, 12) % 2 == 0, 0, 255).astype(np.uint8)])
SIXTEEN = np.array([[0, 257, 32896, 65535]] * 4, dtype=np.uint16)


def _palette_with_transparency() -> bytes:
    img = Image.fromarray(noise(3, 8)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    return _image_bytes(img, "PNG", transparency=0)


CONVERTIBLE = {
    "gray.png": lambda: _png(GRAY),
    "rgba.png": lambda: _png(RGBA, "RGBA"),
    "sixteen.png": lambda: _png(SIXTEEN),
    "palette.png": _palette_with_transparency,
    "bilevel.png": lambda: _image_bytes(Image.fromarray(GRAY > 128), "PNG"),
    "cmyk.jpg": lambda: _image_bytes(Image.fromarray(noise(4, 12)).convert("CMYK"), "JPEG"),
    "float.tif": lambda: _image_bytes(Image.fromarray((GRAY / 255.0).astype(np.float32), "F"), "TIFF"),
    "la.png": lambda: _image_bytes(Image.fromarray(GRAY).convert("LA"), "PNG"),
}

BROKEN = {
    "truncated.jpg": (truncated_jpeg, "truncated"),
    "empty.png": (lambda: b"", "empty file"),
    "notes.png": (lambda: b"these are my notes, not a picture\n" * 20, "not an image"),
    "huge.png": (lambda: png_header_only(100_000, 100_000), "too large"),  # past PIL's own bomb limit
    "big.png": (lambda: png_header_only(9000, 9000), "too large"),  # under PIL's limit, over ours (8192^2)
    "bad-crc.png": (lambda: png_header_only(8, 8)[:-6] + b"\0\0\0\0\0\0", ""),
}


@pytest.mark.parametrize("name", sorted(CONVERTIBLE))
def test_convertible_images_become_rgb(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(CONVERTIBLE[name]())
    img = open_image(path)
    assert img.mode == "RGB" and img.size[0] > 0
    arr = np.asarray(img)
    if name == "gray.png":
        np.testing.assert_array_equal(arr, np.repeat(GRAY[..., None], 3, axis=2))
    if name == "rgba.png":  # alpha 0 is composited on white
        assert (arr[0, 0] == 255).all() and (arr[0, 1] == RGBA[0, 1, :3]).all()
    if name == "sixteen.png":  # the full 16-bit range maps onto 8 bits, not clipped or stretched
        assert Image.open(path).mode.startswith("I")
        np.testing.assert_array_equal(arr[0, :, 0], [0, 1, 128, 255])


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_images_raise_a_short_reason(tmp_path, name, monkeypatch):
    make, reason = BROKEN[name]
    path = tmp_path / name
    path.write_bytes(make())
    decoded = []
    original = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or original(self))
    with pytest.raises(DatasetError) as err:
        open_image(path)
    assert reason in str(err.value) and "\n" not in str(err.value)
    if name in ("huge.png", "big.png"):
        assert decoded == [], "a huge image must be refused from its header, before any pixels are allocated"


def test_a_missing_file_and_a_folder_are_rejects_too(tmp_path):
    with pytest.raises(DatasetError):
        open_image(tmp_path / "gone.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(DatasetError):
        open_image(tmp_path / "dir.png")


def test_dataset_items_turn_any_loading_failure_into_a_reject(tmp_path):
    """A decoder or transform raising something unexpected must not kill a DataLoader worker."""
    class Source:
        def load(self, ref):
            if ref == "boom":
                raise ZeroDivisionError("decoder bug")
            return Image.fromarray(noise(0, 8))

    ds = ExampleImages(SimpleNamespace(), ["ok", "boom"], ["a", "b"], lambda img: np.asarray(img), source=Source())
    assert ds[1] == (1, None, "cannot load: ZeroDivisionError: decoder bug")
    import torch

    rows, images, rejects = collate_images([(0, torch.zeros(3, 2, 2), None), ds[1]])
    assert rows.tolist() == [0] and images.shape == (1, 3, 2, 2) and rejects == [(1, "cannot load: ZeroDivisionError: "
                                                                                     "decoder bug")]


def test_check_rejects_threshold_is_configurable():
    from assets.extraction import check_rejects

    rejects = [{"path": f"/x/{i}.png", "reason": "empty file"} for i in range(2)]
    check_rejects(rejects[:1], 100, SimpleNamespace(max_reject_share=0.01))  # 1% is allowed
    with pytest.raises(DatasetError, match=r"2 of 100 images \(2.0%\).*limit of 1.0%.*/x/0.png \(empty file\)"):
        check_rejects(rejects, 100, SimpleNamespace(max_reject_share=0.01))
    check_rejects(rejects, 100, SimpleNamespace(max_reject_share=0.05))
    with pytest.raises(DatasetError, match="between 0 and 1"):
        check_rejects([], 100, SimpleNamespace(max_reject_share=5))
    with pytest.raises(DatasetError, match="no examples"):
        check_rejects([], 0, SimpleNamespace(max_reject_share=0.01))


def test_extraction_records_rejects_and_stops_above_the_threshold(folder_store):
    from assets.extraction import run_extraction
    from storage.layout import FeatureStore
    from storage.warehouse import build_warehouse, connect_readonly
    from synergy.registry import load_registry

    bad = {"truncated.jpg": truncated_jpeg(), "empty.png": b"", "notes.png": b"not an image" * 10,
           "huge.png": png_header_only(100_000, 100_000)}
    for name, payload in bad.items():
        (folder_store.images / "dog" / name).write_bytes(payload)
    for name in ("gray.png", "rgba.png", "sixteen.png"):
        (folder_store.images / "cat" / name).write_bytes(CONVERTIBLE[name]())
    examples = folder_store.write_examples()
    n_total = examples.num_rows
    assert n_total == 27
    store = FeatureStore(str(folder_store.store_root))
    part = store.embeddings("tiny", "pets")
    part_dir = folder_store.store_root / "embeddings" / "backbone=tiny" / "dataset=pets"

    # 4 of 27 unreadable: above the default 1% -> a clear error and nothing written
    with pytest.raises(DatasetError) as err:
        run_extraction(FakeContext(), folder_store.resource(), "tiny", "pets")
    message = str(err.value)
    assert message.startswith(f"4 of {n_total} images (14.8%) could not be read, above the limit of 1.0%")
    assert str(folder_store.images / "dog") in message and "nothing was written" in message
    assert not part.exists() and not store.rejects("tiny", "pets").exists()
    assert not [p for p in part_dir.iterdir()], "no temporary file may be left behind"

    # a looser, configured threshold: the good and the convertible images land, the broken ones are rejects
    meta = run_extraction(FakeContext(), folder_store.resource(max_reject_share=0.2), "tiny", "pets")
    assert meta["rows"] == n_total - 4 and meta["rejects"] == 4
    table = pq.read_table(str(part))
    ids = set(table["example_id"].to_pylist())
    assert {"cat/gray.png", "cat/rgba.png", "cat/sixteen.png"} <= ids and not ids & {f"dog/{n}" for n in bad}
    rejects = pq.read_table(str(store.rejects("tiny", "pets")))
    assert sorted(rejects["example_id"].to_pylist()) == sorted(f"dog/{n}" for n in bad)
    assert all(p.startswith(str(folder_store.images)) for p in rejects["path"].to_pylist())

    # the rejects are a view in the warehouse
    build_warehouse(store, load_registry(folder_store.registry_path))
    con = connect_readonly(store.warehouse.path)
    try:
        rows = con.execute("SELECT backbone, dataset, example_id, path, reason FROM rejects ORDER BY example_id").fetchall()
        assert [r[2] for r in rows] == sorted(f"dog/{n}" for n in bad)
        reasons = {r[2]: r[4] for r in rows}
        assert reasons["dog/empty.png"] == "empty file" and "too large" in reasons["dog/huge.png"]
        assert "truncated" in reasons["dog/truncated.jpg"] and "not an image" in reasons["dog/notes.png"]
        assert rows[0][:2] == ("tiny", "pets")
        assert con.execute("SELECT count(*) FROM embeddings").fetchone()[0] == n_total - 4
    finally:
        con.close()

    # rerun at the default threshold: it fails again and the previous version stays, byte for byte
    before = part.read_bytes(), store.rejects("tiny", "pets").read_bytes()
    with pytest.raises(DatasetError, match="4 of 27 images"):
        run_extraction(FakeContext(), folder_store.resource(), "tiny", "pets")
    assert (part.read_bytes(), store.rejects("tiny", "pets").read_bytes()) == before
    assert sorted(p.name for p in part_dir.iterdir()) == ["data.parquet"]
