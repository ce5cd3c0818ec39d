"""Helpers shared by the reliability tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import logging
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HELPERS = Path(__file__).parent / "helpers"
ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = "synergy-tiny-test"


class FakeContext:
    """What run_extraction needs of a Dagster context."""

    def __init__(self):
        self.log = logging.getLogger("reliability")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge canvas: valid signature and IHDR, a token IDAT, no pixel data to speak of."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def noise(seed: int, size: int = 20, channels: int = 3) -> np.ndarray:
    shape = (size, size, channels) if channels > 1 else (size, size)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def write_good_images(folder: Path, classes: list[str], per_class: int, seed: int = 0) -> None:
    from PIL import Image

    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(noise(seed * 1000 + c * 100 + i)).save(folder / name / f"img{i:03d}.png")


def truncated_jpeg(size: int = 64) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(noise(7, size)).save(buf, format="JPEG", quality=95)
    data = buf.getvalue()
    return data[: len(data) // 2]


@dataclass
class FolderStore:
    root: Path
    images: Path
    registry_path: Path
    store_root: Path

    def resource(self, **overrides):
        from pipelines.resources import SynergyResource

        settings = dict(registry_path=str(self.registry_path), store_root=str(self.store_root), device="cpu",
                        batch_size=16, num_workers=0, max_reject_share=0.01)
        settings.update(overrides)
        return SynergyResource(**settings)

    def write_examples(self, dataset: str = "pets"):
        from storage.atomic import write_table
        from storage.layout import FeatureStore
        from synergy.datasets import build_examples
        from synergy.registry import load_registry

        table = build_examples(load_registry(self.registry_path).dataset(dataset))
        write_table(FeatureStore(str(self.store_root)).examples(dataset), table)
        return table


def registry_yaml(images: Path, checkpoint: Path, classes: list[str], backbones: tuple[str, ...] = ("tiny",)) -> str:
    lines = ["datasets:", "  - key: pets", f"    source: 'image-folder:{images}'",
             f"    classes: [{', '.join(classes)}]", "    templates: ['a photo of a {c}.', 'a {c}']",
             "    extract: [train, fewshot, test]", "backbones:"]
    lines += [f"  - {{key: {b}, model: {TINY_MODEL}, family: vit, pretrained: '{checkpoint}'}}" for b in backbones]
    return "\n".join(lines) + "\n"



def python() -> str:
    return sys.executable


# ---------------------------------------------------------------- subprocess helpers


def load_helper(name: str):
    """Import tests/reliability/helpers/<name>.py as a module (the same code the subprocesses run)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"reliability_helper_{name}", HELPERS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def start_helper(name: str, *args) -> "subprocess.Popen":
    import subprocess

    proc = subprocess.Popen([python(), str(HELPERS / f"{name}.py"), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    proc.pending = b""  # stdout read past the last line wait_for_line returned
    STARTED.append(proc)
    return proc


STARTED: list = []  # helper processes of the current test; conftest kills any still running at teardown


def sigkill(proc) -> None:
    """SIGKILL a helper mid-flight and reap it (its return code is then -SIGKILL). A helper a failing
    test never got to kill is stopped by conftest's autouse fixture (stop_started)."""
    import os
    import signal

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def stop_started() -> None:
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream and not stream.closed:
                stream.close()


def wait_for_line(proc, wanted: str, timeout: float = 120.0) -> list[str]:
    """Read the process's stdout (unbuffered, so no line hides in a buffer) until a line equal to `wanted`."""
    import os
    import select
    import time

    fd, lines, deadline = proc.stdout.fileno(), [], time.monotonic() + timeout
    while True:
        while b"\n" in proc.pending:
            line, proc.pending = proc.pending.split(b"\n", 1)
            lines.append(line.decode().strip())
            if lines[-1] == wanted:
                return lines
        if time.monotonic() > deadline:
            break
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:  # EOF: the process is gone
                break
            proc.pending += chunk
    try:
        proc.wait(timeout=5)
    except Exception:
        pass
    err = proc.stderr.read().decode() if proc.poll() is not None else "(still running)"
    raise AssertionError(f"{wanted!r} not seen; got {lines}; stderr: {err[-2000:]}")


def finish(proc, timeout: float = 120.0) -> str:
    """Wait for a helper; it must succeed. Returns its stdout not yet read by wait_for_line."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()[-2000:]
    return (proc.pending + out).decode()


def store_registry(path: Path, backbones: list[str], datasets: list[str], n_classes: int = 3) -> Path:
    """A registry that only has to parse: the store's tables are written by the tests themselves."""
    classes = ", ".join(f"c{i}" for i in range(n_classes))
    lines = ["datasets:"] + [f"  - {{key: {d}, source: fashion-mnist, classes: [{classes}], templates: ['a {{c}}']}}"
                             for d in datasets]
    lines += ["backbones:"] + [f"  - {{key: {b}, model: RN50, family: resnet, pretrained: openai}}" for b in backbones]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_examples_table(store_root: Path, dataset: str, n: int = 10) -> None:
    """A small examples table, so that the warehouse's base views (which read it too) can be created."""
    import pyarrow as pa

    from storage.atomic import write_table
    from storage.layout import FeatureStore
    from storage.schemas import EXAMPLES_SCHEMA

    write_table(FeatureStore(str(store_root)).examples(dataset), pa.table({
        "example_id": [f"ex-{i}" for i in range(n)], "split": ["test"] * n, "label": [i % 3 for i in range(n)],
        "ref": [f"test:{i}" for i in range(n)], "perturbation": ["none"] * n, "severity": [0] * n},
        schema=EXAMPLES_SCHEMA))
