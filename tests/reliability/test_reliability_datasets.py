"""Datasets that do not match their registry entry give one clear DatasetError, not a crash later on."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from reliability_support import write_good_images

from synergy.datasets import FashionMnistSource, build_examples, open_source
from synergy.ensembles.base import EnsembleError
from synergy.errors import DatasetError
from synergy.registry import parse_registry


def _spec(source: str, classes: list[str], **extra):
    fields = ", ".join(f"{k}: {v}" for k, v in extra.items())
    text = (f"datasets:\n  - {{key: d, source: '{source}', classes: [{', '.join(classes)}], "
            f"templates: ['a {{c}}']{', ' + fields if fields else ''}}}\n")
    return parse_registry(text).dataset("d")


def test_class_names_that_do_not_match_the_folders(tmp_path):
    write_good_images(tmp_path, ["cat", "dog"], 3)
    with pytest.raises(DatasetError) as err:
        build_examples(_spec(f"image-folder:{tmp_path}", ["cat", "bird"]))
    assert "missing folders: ['bird']" in str(err.value) and "folders not in the registry: ['dog']" in str(err.value)


def test_hidden_folders_and_non_image_files_are_ignored(tmp_path):
    write_good_images(tmp_path, ["cat", "dog"], 5)
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / "cat" / ".DS_Store").write_bytes(b"\0\1")
    (tmp_path / "cat" / "README.txt").write_text("cats")
    table = build_examples(_spec(f"image-folder:{tmp_path}", ["cat", "dog"]))
    assert table.num_rows == 10 and not any(i.endswith((".txt", "Store")) for i in table["example_id"].to_pylist())


def test_an_empty_class_folder(tmp_path):
    write_good_images(tmp_path, ["cat"], 3)
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / "notes.txt").write_text("no pictures here")
    with pytest.raises(DatasetError, match="class folder 'dog' has no image files"):
        build_examples(_spec(f"image-folder:{tmp_path}", ["cat", "dog"]))


def test_a_missing_image_folder(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        build_examples(_spec(f"image-folder:{tmp_path / 'nope'}", ["cat"]))


def test_too_few_images_to_split(tmp_path):
    write_good_images(tmp_path, ["cat", "dog"], 1)  # one per class: no stratified test split possible
    with pytest.raises(DatasetError, match="cannot carve a stratified test split"):
        build_examples(_spec(f"image-folder:{tmp_path}", ["cat", "dog"]))


def test_empty_splits(tmp_path):
    write_good_images(tmp_path / "train", ["cat", "dog"], 4)
    write_good_images(tmp_path / "test", ["cat", "dog"], 2)
    # train_size takes the whole train pool: no fewshot examples are left
    with pytest.raises(DatasetError, match="leaves no fewshot examples"):
        build_examples(_spec(f"image-folder:{tmp_path}", ["cat", "dog"], train_size=8))
    table = build_examples(_spec(f"image-folder:{tmp_path}", ["cat", "dog"], train_size=6))
    assert sorted(set(table["split"].to_pylist())) == ["fewshot", "test", "train"]


def test_empty_split_is_refused_at_extraction_time():
    from types import SimpleNamespace

    from assets.extraction import check_rejects

    with pytest.raises(DatasetError, match="hold no examples"):
        check_rejects([], 0, SimpleNamespace(max_reject_share=0.01))


def _fake_fashion_mnist(folder: Path, labels: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n = len(labels)
    for prefix in ("train", "t10k"):
        images = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28)) + bytes(n * 28 * 28)
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as fh:
            fh.write(images)
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as fh:
            fh.write(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + labels.astype(np.uint8).tobytes())


@pytest.mark.parametrize("n_names, message", [(9, "labels 0..9 but the registry lists 9 class names"),
                                              (11, "labels \\[10\\] never occur")])
def test_class_names_that_do_not_match_the_labels(tmp_path, monkeypatch, n_names, message):
    _fake_fashion_mnist(tmp_path / "fm", np.arange(40) % 10)
    monkeypatch.setenv("SYNERGY_FASHION_MNIST_DIR", str(tmp_path / "fm"))
    spec = _spec("fashion-mnist", [f"c{i}" for i in range(n_names)])
    with pytest.raises(DatasetError, match=message):
        build_examples(spec)
    assert isinstance(open_source(spec), FashionMnistSource)


def test_k_larger_than_the_examples_per_class():
    from synergy.ensembles.protocol import draw_k_shot

    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    assert len(draw_k_shot(labels, 2, seed=0)) == 6
    with pytest.raises(EnsembleError, match="class 1 has only 2 example\\(s\\) in the fit pool; 3-shot needs 3"):
        draw_k_shot(labels, 3, seed=0)
    with pytest.raises(EnsembleError, match="class 3 has only 0"):
        draw_k_shot(labels, 1, seed=0, n_classes=4)
