"""Datasets: sources, seeded splits with stable example ids, and a torch Dataset that loads images.

A source gives two pools of (example_id, label, ref): the official train pool and the test pool.
`build_examples` carves the train pool into `train` (what the demo zoo trains on) and `fewshot`
(what ensembles draw labelled examples from), seeded and disjoint, and keeps `test` apart.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image, UnidentifiedImageError

from synergy import perturb
from synergy.errors import DatasetError
from synergy.registry import DatasetSpec

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
MAX_IMAGE_PIXELS = 8192 * 8192

EXAMPLES_SCHEMA = pa.schema([
    pa.field("example_id", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("label", pa.int32(), nullable=False),
    pa.field("ref", pa.string(), nullable=False),  # how the source finds the image, plus `|kind|severity`
    pa.field("perturbation", pa.string(), nullable=False),  # "none" for clean images
    pa.field("severity", pa.int32(), nullable=False),
])


@dataclass(frozen=True)
class Pool:
    example_ids: np.ndarray  # str
    labels: np.ndarray  # int
    refs: np.ndarray  # str: how the source finds the image again


# ---------------------------------------------------------------- sources


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist_dir() -> Path:
    """The Debian package's folder, or SYNERGY_FASHION_MNIST_DIR, or a torchvision download as a last resort."""
    candidates = [os.environ.get("SYNERGY_FASHION_MNIST_DIR"), *FASHION_MNIST_DIRS]
    for candidate in filter(None, candidates):
        if (Path(candidate) / "t10k-labels-idx1-ubyte.gz").exists():
            return Path(candidate)
    cache = Path(os.environ.get("SYNERGY_CACHE", Path.home() / ".cache" / "synergy")) / "FashionMNIST" / "raw"
    if not (cache / "t10k-labels-idx1-ubyte.gz").exists():
        try:
            from torchvision.datasets import FashionMNIST

            FashionMNIST(str(cache.parent.parent), download=True)
        except Exception as exc:  # no network: say how to get the files
            raise DatasetError(
                "Fashion-MNIST not found. Install it with `apt-get install dataset-fashion-mnist` "
                f"(files land in {FASHION_MNIST_DIRS[0]}), or set SYNERGY_FASHION_MNIST_DIR to a folder with "
                f"the four *-ubyte.gz files. The torchvision download failed too: {exc}"
            ) from None
    return cache


@lru_cache(maxsize=2)
def _fashion_mnist_arrays(folder: str) -> dict[str, np.ndarray]:
    f = Path(folder)
    return {
        "train": _read_idx(f / "train-images-idx3-ubyte.gz"), "train_labels": _read_idx(f / "train-labels-idx1-ubyte.gz"),
        "test": _read_idx(f / "t10k-images-idx3-ubyte.gz"), "test_labels": _read_idx(f / "t10k-labels-idx1-ubyte.gz"),
    }


class Source:
    """Where a dataset's images come from. `pools()` lists them; `load(ref)` opens one as PIL."""

    def pools(self) -> tuple[Pool, Pool | None]:
        raise NotImplementedError

    def load(self, ref: str) -> Image.Image:
        raise NotImplementedError


class FashionMnistSource(Source):
    def __init__(self, n_classes: int):
        self.folder = str(fashion_mnist_dir())
        self.n_classes = n_classes

    def pools(self):
        arrays = _fashion_mnist_arrays(self.folder)
        out = []
        for split in ("train", "test"):
            labels = arrays[f"{split}_labels"].astype(np.int64)
            check_labels(f"fashion-mnist ({split})", labels, self.n_classes)
            idx = np.arange(len(labels))
            out.append(Pool(np.array([f"{split}-{i:05d}" for i in idx]), labels,
                            np.array([f"{split}:{i}" for i in idx])))
        return out[0], out[1]

    def load(self, ref: str) -> Image.Image:
        split, index = ref.split(":")
        return Image.fromarray(_fashion_mnist_arrays(self.folder)[split][int(index)], mode="L")


class ImageFolderSource(Source):
    """root/<class>/<image>, or root/train/<class>/… and root/test/<class>/… when those folders exist."""

    def __init__(self, root: str, classes: tuple[str, ...]):
        self.root = Path(root).expanduser()
        self.classes = classes
        if not self.root.is_dir():
            raise DatasetError(f"image-folder {self.root} does not exist or is not a folder")

    def _scan(self, folder: Path) -> Pool:
        found = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if sorted(self.classes) != found:
            missing = sorted(set(self.classes) - set(found))
            extra = sorted(set(found) - set(self.classes))
            raise DatasetError(f"image-folder {folder}: class folders do not match the registry's class names "
                               f"(missing folders: {missing or 'none'}; folders not in the registry: {extra or 'none'})")
        ids, labels = [], []
        for label, name in enumerate(self.classes):
            files = sorted(p for p in (folder / name).rglob("*") if p.is_file() and is_image_name(p))
            if not files:
                raise DatasetError(f"image-folder {folder}: class folder {name!r} has no image files "
                                   f"({', '.join(sorted(IMAGE_SUFFIXES))}); every class needs at least one")
            for p in files:
                ids.append(str(p.relative_to(self.root)))
                labels.append(label)
        ids = np.array(ids)
        return Pool(ids, np.array(labels, dtype=np.int64), ids)

    def pools(self):
        if (self.root / "train").is_dir() and (self.root / "test").is_dir():
            return self._scan(self.root / "train"), self._scan(self.root / "test")
        return self._scan(self.root), None

    def load(self, ref: str) -> Image.Image:
        return open_image(self.root / ref)


class TorchvisionSource(Source):
    """A torchvision dataset class by name (e.g. `torchvision:CIFAR10`); downloads when the network allows."""

    def __init__(self, name: str, n_classes: int):
        import torchvision.datasets as tvd

        if not hasattr(tvd, name):
            raise DatasetError(f"torchvision has no dataset {name!r}")
        self.root = Path(os.environ.get("SYNERGY_CACHE", Path.home() / ".cache" / "synergy")) / "torchvision"
        self.cls, self.name, self.n_classes = getattr(tvd, name), name, n_classes
        self._data: dict[str, object] = {}

    @property
    def has_splits(self) -> bool:
        import inspect

        return "train" in inspect.signature(self.cls).parameters

    def _split(self, split: str):
        if split not in self._data:
            try:
                kwargs = {"train": split == "train"} if self.has_splits else {}
                self._data[split] = self.cls(str(self.root), download=True, **kwargs)
            except Exception as exc:
                raise DatasetError(f"torchvision dataset {self.name} ({split}) could not be loaded or downloaded "
                                   f"into {self.root}: {exc}") from None
        return self._data[split]

    def pools(self):
        out = []
        for split in ("train", "test") if self.has_splits else ("train",):  # e.g. EuroSAT ships one set
            data = self._split(split)
            targets = getattr(data, "targets", None)
            labels = np.asarray(targets if targets is not None else [y for _, y in data], dtype=np.int64)
            names = getattr(data, "classes", None)
            if names is not None and len(names) != self.n_classes:
                raise DatasetError(f"torchvision dataset {self.name} has {len(names)} classes "
                                   f"({', '.join(map(str, names[:5]))}, …) but the registry lists "
                                   f"{self.n_classes} class names")
            check_labels(f"torchvision dataset {self.name} ({split})", labels, self.n_classes)
            idx = np.arange(len(labels))
            out.append(Pool(np.array([f"{split}-{i:06d}" for i in idx]), labels,
                            np.array([f"{split}:{i}" for i in idx])))
        return out[0], (out[1] if len(out) > 1 else None)

    def load(self, ref: str) -> Image.Image:
        split, index = ref.split(":")
        return to_rgb(self._split(split)[int(index)][0])


def check_labels(what: str, labels: np.ndarray, n_classes: int) -> None:
    """Labels must be 0..n_classes-1 and every class must occur: otherwise the class names do not match."""
    if len(labels) == 0:
        raise DatasetError(f"{what} has no examples")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise DatasetError(f"{what} has labels {int(labels.min())}..{int(labels.max())} but the registry lists "
                           f"{n_classes} class names (labels must be 0..{n_classes - 1})")
    absent = sorted(set(range(n_classes)) - set(np.unique(labels).tolist()))
    if absent:
        raise DatasetError(f"{what} has {len(np.unique(labels))} distinct labels but the registry lists {n_classes} "
                           f"class names; labels {absent[:10]} never occur: the class list does not match the data")


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def open_source(spec: DatasetSpec) -> Source:
    kind, _, arg = spec.source.partition(":")
    if kind == "fashion-mnist":
        return FashionMnistSource(spec.n_classes)
    if kind == "image-folder":
        return ImageFolderSource(arg, spec.classes)
    if kind == "torchvision":
        return TorchvisionSource(arg, spec.n_classes)
    raise DatasetError(f"dataset {spec.key!r}: unknown source {spec.source!r} "
                       "(use fashion-mnist, image-folder:<path> or torchvision:<ClassName>)")


# ---------------------------------------------------------------- images


def open_image(path: Path) -> Image.Image:
    """Open any image PIL can read as RGB; raise DatasetError with a short reason otherwise.

    The size check reads only the header, so a file that claims a huge canvas is refused before
    any pixel memory is allocated; truncated files fail in `load()` (PIL does not pad them).
    """
    try:
        if path.stat().st_size == 0:
            raise DatasetError("empty file")
        with Image.open(path) as img:
            if img.width < 1 or img.height < 1:
                raise DatasetError(f"image has no pixels ({img.width}x{img.height})")
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise DatasetError(f"image too large ({img.width}x{img.height} pixels, limit {MAX_IMAGE_PIXELS})")
            img.load()
            return to_rgb(img)
    except DatasetError:
        raise
    except UnidentifiedImageError:
        raise DatasetError("not an image PIL can read") from None
    except Image.DecompressionBombError as exc:
        raise DatasetError(f"image too large: {exc}") from None
    except MemoryError:
        raise DatasetError("image too large to decode (out of memory)") from None
    except Exception as exc:  # a corrupt file can make any decoder raise anything: it is a reject, not a crash
        raise DatasetError(f"cannot decode: {type(exc).__name__}: {exc}") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Grayscale, palette, RGBA, 16-bit and float images become 8-bit RGB (alpha composited on white)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit: keep the full range, 65535 -> 255
        img = Image.fromarray((np.asarray(img, dtype=np.float64) / 257.0).round().astype(np.uint8), "L")
    elif img.mode in ("I", "F"):  # 32-bit int or float: 8-bit content stays, wider content is scaled by its range
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = min(arr.min(), 0.0), arr.max()
        if img.mode == "F" and hi <= 1.0 and lo >= 0.0:
            arr = arr * 255.0
        elif lo < 0.0 or hi > 255.0:
            arr = (arr - lo) * (255.0 / max(hi - lo, 1e-12))
        img = Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "P", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


# ---------------------------------------------------------------- splits


def _take(pool: Pool, index: np.ndarray, split: str) -> pa.Table:
    return pa.table({"example_id": pool.example_ids[index], "split": np.full(len(index), split),
                     "label": pool.labels[index].astype(np.int32), "ref": pool.refs[index],
                     "perturbation": np.full(len(index), "none"), "severity": np.zeros(len(index), np.int32)},
                    schema=EXAMPLES_SCHEMA)


def _with_perturbations(table: pa.Table, spec: DatasetSpec) -> pa.Table:
    """Each example once clean and once per (kind, severity): ids `<id>@<kind>-<severity>`."""
    parts = [table]
    for p in spec.perturbations:
        suffix = f"{p.kind}-{p.severity}"
        ids = pa.array([f"{i}@{suffix}" for i in table.column("example_id").to_pylist()])
        refs = pa.array([f"{r}|{p.kind}|{p.severity}" for r in table.column("ref").to_pylist()])
        parts.append(table.set_column(0, "example_id", ids).set_column(3, "ref", refs)
                     .set_column(4, "perturbation", pa.array([p.kind] * table.num_rows))
                     .set_column(5, "severity", pa.array([p.severity] * table.num_rows, pa.int32()))
                     .cast(EXAMPLES_SCHEMA))
    return pa.concat_tables(parts)


def _subset(n: int, size: int | None, seed: int, salt: str) -> np.ndarray:
    """A seeded subset of range(n) in original order; identical for every variant of a base dataset."""
    if size is None or size >= n:
        return np.arange(n)
    rng = np.random.default_rng([seed, zlib.crc32(salt.encode())])
    return np.sort(rng.choice(n, size=size, replace=False))


def build_examples(spec: DatasetSpec, source: Source | None = None) -> pa.Table:
    """The dataset's example table: (example_id, split, label, ref), seeded and reproducible.

    Without a test pool (a flat image folder), 20% of the examples, stratified, become `test`.
    """
    source = source or open_source(spec)
    train_pool, test_pool = source.pools()
    if test_pool is None:
        from sklearn.model_selection import train_test_split

        idx = np.arange(len(train_pool.labels))
        try:
            rest, test_idx = train_test_split(idx, test_size=0.2, random_state=spec.split_seed,
                                              stratify=train_pool.labels)
        except ValueError as exc:
            raise DatasetError(f"dataset {spec.key!r}: cannot carve a stratified test split: {exc}") from None
        test_pool = Pool(train_pool.example_ids[np.sort(test_idx)], train_pool.labels[np.sort(test_idx)],
                         train_pool.refs[np.sort(test_idx)])
        rest = np.sort(rest)
        train_pool = Pool(train_pool.example_ids[rest], train_pool.labels[rest], train_pool.refs[rest])

    order = np.random.default_rng(spec.split_seed).permutation(len(train_pool.labels))
    n_train = spec.train_size if spec.train_size is not None else len(order) // 2
    if n_train >= len(order):
        raise DatasetError(f"dataset {spec.key!r}: train_size={n_train} leaves no fewshot examples "
                           f"(the train pool has {len(order)})")
    train_idx = np.sort(order[:n_train])
    fewshot_all = np.sort(order[n_train:])
    fewshot_idx = fewshot_all[_subset(len(fewshot_all), spec.fewshot_size, spec.split_seed, "fewshot")]
    test_idx = _subset(len(test_pool.labels), spec.test_size, spec.split_seed, "test")
    parts = [_take(train_pool, fewshot_idx, "fewshot"), _take(test_pool, test_idx, "test")]
    if not spec.perturbations:  # a shifted variant reuses the base's zoo; it has no train split of its own
        parts.insert(0, _take(train_pool, train_idx, "train"))
    table = pa.concat_tables(parts)
    if spec.perturbations:
        table = _with_perturbations(table, spec)
    for split in ("fewshot", "test"):
        n = sum(1 for s in table.column("split").to_pylist() if s == split)
        if n == 0:
            raise DatasetError(f"dataset {spec.key!r}: split {split!r} is empty")
    return table


def dataset_fingerprint(spec: DatasetSpec, examples: pa.Table) -> str:
    """sha256 over the example table and the declared classes/templates/perturbation."""
    h = hashlib.sha256(repr((spec.source, spec.classes, spec.templates, spec.perturbations)).encode())
    for name in ("example_id", "split", "label"):
        h.update(name.encode())
        for chunk in examples.column(name).chunks:
            for buf in chunk.buffers():
                if buf is not None:
                    h.update(buf)
    return h.hexdigest()


class ExampleImages:
    """A torch-style map dataset over rows of an example table; applies the dataset's perturbation.

    `__getitem__` returns (row, tensor) or (row, None, reason) for an image that cannot be read, so a
    broken file is recorded as a reject instead of killing the run.
    """

    def __init__(self, spec: DatasetSpec, refs: list[str], example_ids: list[str], preprocess, source: Source | None = None):
        self.spec, self.refs, self.example_ids, self.preprocess = spec, refs, example_ids, preprocess
        self._source = source

    @property
    def source(self) -> Source:
        if self._source is None:  # opened lazily so DataLoader workers build their own
            self._source = open_source(self.spec)
        return self._source

    def __len__(self) -> int:
        return len(self.refs)

    def load_pil(self, i: int) -> Image.Image:
        ref, *shift = self.refs[i].split("|")
        img = self.source.load(ref)
        if shift:  # seeded by the example, so every backbone sees the same corrupted pixels
            kind, severity = shift[0], int(shift[1])
            img = perturb.apply(kind, img, severity, zlib.crc32(self.example_ids[i].encode()))
        return img

    def __getitem__(self, i: int):
        try:
            return i, self.preprocess(self.load_pil(i)), None
        except DatasetError as exc:
            return i, None, str(exc)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # a decoder or transform choking on one file must not kill a DataLoader worker
            return i, None, f"cannot load: {type(exc).__name__}: {exc}"


def collate_images(batch):
    """Stack the readable images; hand back the unreadable ones as (row, reason) rejects."""
    import torch

    ok = [(i, x) for i, x, _ in batch if x is not None]
    rejects = [(i, reason) for i, x, reason in batch if x is None]
    rows = torch.tensor([i for i, _ in ok], dtype=torch.long)
    images = torch.stack([x for _, x in ok]) if ok else torch.empty(0)
    return rows, images, rejects
