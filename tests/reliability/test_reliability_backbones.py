"""Backbones: unknown names, weights that are not there offline, and checkpoints that try to run code."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from synergy.backbones import load_backbone, register_model_configs, resolve_weights
from synergy.errors import BackboneError
from synergy.registry import BackboneSpec

pytest.importorskip("open_clip")


def _spec(model: str, pretrained: str | None, key: str = "b") -> BackboneSpec:
    return BackboneSpec(key=key, model=model, family="resnet", pretrained=pretrained)


def test_unknown_model_lists_closest_names():
    with pytest.raises(BackboneError) as err:
        resolve_weights(_spec("RN5O", "openai"))
    message = str(err.value)
    assert "unknown open_clip model 'RN5O'" in message and "RN50" in message


def test_unknown_pretrained_tag_lists_closest_tags():
    with pytest.raises(BackboneError) as err:
        resolve_weights(_spec("ViT-B-32", "opnai"))
    message = str(err.value)
    assert "no pretrained tag 'opnai'" in message and "closest valid tags: openai" in message


def test_model_without_any_tag_says_to_use_a_path():
    register_model_configs()
    with pytest.raises(BackboneError, match="local checkpoint path"):
        resolve_weights(_spec("synergy-tiny-test", "openai"))


@pytest.fixture
def offline_empty_cache(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1, empty HF and open_clip caches, and a socket layer that records any connection attempt."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # ~/.cache/clip, open_clip's URL cache
    attempts: list = []

    def no_network(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    return tmp_path, attempts


@pytest.mark.parametrize("model", ["RN50", "ViT-B-32"])
def test_weights_missing_offline_is_one_message_with_three_ways(offline_empty_cache, model):
    tmp_path, attempts = offline_empty_cache
    with pytest.raises(BackboneError) as err:
        load_backbone(_spec(model, "openai", key="paper-rn50"), device="cpu")
    message = str(err.value)
    assert "'paper-rn50'" in message and model in message
    assert "open_clip_pytorch_model.bin" in message and "not in the cache" in message  # names the missing file
    assert str(tmp_path / "hf" / "hub") in message and "HF_HUB_OFFLINE=1" in message
    assert "1. point the registry entry's `pretrained:` at a local checkpoint" in message
    assert "2. pre-populate the Hugging Face / open_clip cache" in message
    assert "3. run the same command once on a machine with internet access" in message
    assert err.value.__cause__ is None and (err.value.__context__ is None or err.value.__suppress_context__)
    assert attempts == [], "no network access may be attempted"
    assert not list((tmp_path / "hf").rglob("*.bin")), "nothing was downloaded"


def test_weights_found_in_prepopulated_cache_offline(offline_empty_cache):
    """Way 2 works: a file placed in the HF cache layout is used without any network access."""
    tmp_path, attempts = offline_empty_cache
    snapshot = tmp_path / "hf" / "hub" / "models--timm--resnet50_clip.openai" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"not really weights")
    refs = snapshot.parent.parent / "refs"
    refs.mkdir()
    (refs / "main").write_text("abc")
    path = resolve_weights(_spec("RN50", "openai"))
    assert path == str(snapshot / "open_clip_model.safetensors") and attempts == []


def test_missing_local_checkpoint_names_the_file(tmp_path):
    with pytest.raises(BackboneError) as err:
        load_backbone(_spec("synergy-tiny-test", str(tmp_path / "gone.safetensors")), device="cpu")
    assert f"checkpoint file {tmp_path / 'gone.safetensors'} does not exist" in str(err.value)
    assert "Supply them in one of three ways" in str(err.value)


# ---------------------------------------------------------------- malicious checkpoints

class _Payload:
    """Unpickling this calls os.system: the classic malicious-checkpoint trick."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _malicious_checkpoint(path: Path, marker: Path) -> Path:
    import torch

    # pickling stores a reference to os.system and its argument; nothing runs here
    torch.save({"state_dict": {"weight": torch.zeros(2)}, "extra": _Payload(f"touch {marker}")}, path)
    assert path.stat().st_size > 0 and not marker.exists()
    return path


def test_pickled_payload_is_refused_and_never_runs(tmp_path):
    import pickle

    import torch

    # the payload is live: an unsafe load of the same kind of file runs the command
    probe, probe_marker = tmp_path / "probe.pt", tmp_path / "probe-ran"
    torch.load(_malicious_checkpoint(probe, probe_marker), weights_only=False)
    assert probe_marker.exists(), "the test payload must really run code when unpickled unsafely"

    ckpt, marker = _malicious_checkpoint(tmp_path / "evil.pt", tmp_path / "pwned"), tmp_path / "pwned"
    with pytest.raises(BackboneError) as err:
        load_backbone(_spec("synergy-tiny-test", str(ckpt)), device="cpu")
    message = str(err.value)
    assert "refused to load checkpoint" in message and str(ckpt) in message
    assert "system" in message and ".safetensors" in message
    assert not marker.exists(), "the pickled payload ran"
    # the same file under the other accepted suffixes is refused too
    for suffix in (".bin", ".pth"):
        copy = tmp_path / f"evil{suffix}"
        copy.write_bytes(ckpt.read_bytes())
        with pytest.raises(BackboneError, match="refused to load checkpoint"):
            load_backbone(_spec("synergy-tiny-test", str(copy)), device="cpu")
    with pytest.raises(pickle.UnpicklingError):  # torch itself, as open_clip calls it
        torch.load(ckpt, weights_only=True)
    assert not marker.exists()


def test_corrupt_checkpoint_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(os.urandom(64))
    with pytest.raises(BackboneError, match="could not build synergy-tiny-test"):
        load_backbone(_spec("synergy-tiny-test", str(bad)), device="cpu")


def test_safetensors_checkpoint_loads(tmp_path):
    from safetensors.torch import save_file

    random = load_backbone(_spec("synergy-tiny-test", None), device="cpu", weights="random")
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in random.model.state_dict().items()}, str(path))
    loaded = load_backbone(_spec("synergy-tiny-test", str(path)), device="cpu")
    assert loaded.weights_path == str(path) and len(loaded.weights_sha256) == 64
