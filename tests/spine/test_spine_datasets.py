import numpy as np
import pytest
from PIL import Image

from synergy.datasets import ExampleImages, FashionMnistSource, build_examples
from synergy.errors import DatasetError
from synergy.registry import parse_registry


def _split(table, name):
    mask = np.array(table.column("split").to_pylist()) == name
    return table.filter(mask)


def test_fashion_mnist_idx_matches_known_values(tiny_registry):
    source = FashionMnistSource(10)
    train, test = source.pools()
    assert len(train.labels) == 60000 and len(test.labels) == 10000
    # first training image of Fashion-MNIST is an ankle boot (9), the first test image too
    assert train.labels[0] == 9 and test.labels[0] == 9
    assert np.bincount(test.labels).tolist() == [1000] * 10
    img = source.load("train:0")
    assert img.size == (28, 28) and img.mode == "L"


def test_splits_are_seeded_disjoint_and_stable(tiny_registry):
    from synergy.registry import load_registry

    spec = load_registry(tiny_registry).dataset("fmnist-tiny")
    a, b = build_examples(spec), build_examples(spec)
    assert a.equals(b)
    train, fewshot, test = (_split(a, s) for s in ("train", "fewshot", "test"))
    assert (train.num_rows, fewshot.num_rows, test.num_rows) == (256, 120, 150)
    train_ids, few_ids = set(train["example_id"].to_pylist()), set(few_ids_ := fewshot["example_id"].to_pylist())
    assert not train_ids & few_ids and len(few_ids) == len(few_ids_)
    assert all(i.startswith("test-") for i in test["example_id"].to_pylist())
    assert len(set(a["example_id"].to_pylist())) == a.num_rows


def test_shifted_variant_repeats_each_base_example_per_perturbation(tiny_registry):
    text = tiny_registry.read_text().replace(
        "    test_size: 150\n",
        "    test_size: 150\n    perturbations: {kinds: [noise, rotation], severities: [1, 3], test_size: 10, fewshot_size: 5}\n")
    reg = parse_registry(text)
    shift = build_examples(reg.dataset("fmnist-tiny-shift"))
    test = _split(shift, "test")
    assert test.num_rows == 10 * 5  # clean + 2 kinds x 2 severities
    clean = [i for i in test["example_id"].to_pylist() if "@" not in i]
    assert {f"{i}@noise-3" for i in clean} <= set(test["example_id"].to_pylist())
    base_test = set(_split(build_examples(reg.dataset("fmnist-tiny")), "test")["example_id"].to_pylist())
    assert set(clean) <= base_test or len(clean) == 10
    images = ExampleImages(reg.dataset("fmnist-tiny-shift"), test["ref"].to_pylist(), test["example_id"].to_pylist(),
                           preprocess=lambda im: np.asarray(im, dtype=np.float32))
    rows = {eid: i for i, eid in enumerate(test["example_id"].to_pylist())}
    clean_px = images[rows[clean[0]]][1]
    noisy_px = images[rows[clean[0] + "@noise-3"]][1]
    assert clean_px.shape == noisy_px.shape and np.abs(clean_px - noisy_px).mean() > 10
    np.testing.assert_array_equal(noisy_px, images[rows[clean[0] + "@noise-3"]][1])  # deterministic


def test_image_folder_source_and_flat_split(tmp_path):
    for c, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (tmp_path / c).mkdir()
        for i in range(10):
            Image.new("RGB", (8, 8), colour).save(tmp_path / c / f"{i}.png")
    spec = parse_registry(f"""datasets:
  - {{key: colours, source: "image-folder:{tmp_path}", classes: [red, blue], templates: ["a {{c}} square"],
      train_size: 8}}
""").dataset("colours")
    table = build_examples(spec)
    assert _split(table, "test").num_rows == 4  # stratified 20%
    assert sorted(_split(table, "test")["label"].to_pylist()) == [0, 0, 1, 1]
    assert _split(table, "train").num_rows == 8 and _split(table, "fewshot").num_rows == 8


def test_image_folder_class_mismatch_is_a_clear_error(tmp_path):
    (tmp_path / "cat").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "cat" / "a.png")
    spec = parse_registry(f"""datasets:
  - {{key: pets, source: "image-folder:{tmp_path}", classes: [cat, dog], templates: ["a {{c}}"]}}
""").dataset("pets")
    with pytest.raises(DatasetError, match="missing folders: \\['dog'\\]"):
        build_examples(spec)
