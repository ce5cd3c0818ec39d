"""Backbones: one factory over open_clip's registry of model names and pretrained tags.

`load_backbone` turns a registry entry into a model, its eval preprocessing and tokenizer, and
records what identifies the weights (path and sha256). Missing or unknown weights become one
`BackboneError` that says what to do, never a download traceback.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import logging
import os
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from synergy.errors import BackboneError
from synergy.registry import BackboneSpec

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"


@lru_cache(maxsize=1)
def register_model_configs() -> None:
    """Add the demo zoo's tower configs (synergy-*) to open_clip's model registry, once per process."""
    import open_clip

    open_clip.add_model_config(MODEL_CONFIG_DIR)


@dataclass
class LoadedBackbone:
    key: str
    model: object  # open_clip.CLIP, eval mode
    preprocess: object  # torchvision transform for eval
    tokenizer: object
    weights_path: str | None
    weights_sha256: str | None
    embed_dim: int
    image_size: int
    device: str

    @property
    def preprocess_repr(self) -> str:
        return " | ".join(str(t).replace("\n", "") for t in getattr(self.preprocess, "transforms", [self.preprocess]))

    @property
    def image_params(self) -> int:
        return sum(p.numel() for p in self.model.visual.parameters())


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=5, cutoff=0.4)
    return ", ".join(close) if close else ", ".join(sorted(choices)[:10]) + ", …"


def check_model_name(model: str) -> None:
    """Raise BackboneError listing the closest valid open_clip names for an unknown model."""
    import open_clip

    register_model_configs()
    if model.startswith(("hf-hub:", "local-dir:")):
        return
    if model not in open_clip.list_models():
        raise BackboneError(f"unknown open_clip model {model!r}; closest valid names: "
                            f"{_suggest(model, open_clip.list_models())}")


def looks_like_path(pretrained: str) -> bool:
    return os.sep in pretrained or pretrained.endswith((".safetensors", ".pt", ".pth", ".bin"))


def missing_weights_message(spec: BackboneSpec, what: str, cause: object = None) -> str:
    return (
        f"weights for backbone {spec.key!r} ({spec.model}, pretrained={spec.pretrained!r}) are not available: {what}."
        + (f" ({cause})" if cause else "")
        + "\nSupply them in one of three ways:\n"
        "  1. point the registry entry's `pretrained:` at a local checkpoint file (.safetensors/.pt/.bin);\n"
        "  2. pre-populate the Hugging Face / open_clip cache (HF_HOME or ~/.cache/huggingface) on a connected "
        "machine and copy it here;\n"
        "  3. run the same command once on a machine with internet access (it downloads and caches the weights)."
    )


def resolve_weights(spec: BackboneSpec, checkpoint: str | Path | None = None) -> str:
    """The local weights file of a backbone: the given checkpoint, a registry path, or a cached tag download."""
    import open_clip

    register_model_configs()
    check_model_name(spec.model)
    if checkpoint is not None or spec.is_trained_here:
        path = Path(checkpoint) if checkpoint is not None else None
        if path is None or not path.is_file():
            raise BackboneError(f"backbone {spec.key!r} is trained by the demo zoo, but its checkpoint "
                                f"{path} does not exist yet: materialize `backbone_weights` for it first")
        return str(path)
    if spec.model.startswith("hf-hub:"):
        return _hf_weights(spec, spec.model[len("hf-hub:"):], open_clip.pretrained.HF_WEIGHTS_NAME)
    pretrained = spec.pretrained or ""
    if looks_like_path(pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise BackboneError(missing_weights_message(spec, f"checkpoint file {path} does not exist"))
        return str(path)
    cfg = open_clip.get_pretrained_cfg(spec.model, pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(spec.model)
        if not tags:
            raise BackboneError(f"backbone {spec.key!r}: open_clip has no pretrained weights for {spec.model} "
                                f"(asked for tag {pretrained!r}); give `pretrained:` a local checkpoint path instead")
        raise BackboneError(f"backbone {spec.key!r}: open_clip has no pretrained tag {pretrained!r} for "
                            f"{spec.model}; closest valid tags: {_suggest(pretrained, tags)} "
                            f"(all: {', '.join(tags)})")
    if "file" in cfg:
        return _checked_file(spec, cfg["file"])
    hub = cfg.get("hf_hub", "")
    if hub and open_clip.pretrained.has_hf_hub():
        model_id, filename = os.path.split(hub)
        return _hf_weights(spec, model_id, filename or open_clip.pretrained.HF_WEIGHTS_NAME)
    if cfg.get("url"):
        return _url_weights(spec, cfg["url"])
    raise BackboneError(missing_weights_message(spec, "open_clip's metadata gives no file or download location"))


_TRUE = {"1", "ON", "YES", "TRUE"}


def hf_offline() -> bool:
    """HF_HUB_OFFLINE as it is now (huggingface_hub reads it once, at import)."""
    return any(os.environ.get(name, "").upper() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hf_cache_dir() -> str:
    """The Hugging Face hub cache, resolved from the environment as it is now, as huggingface_hub does it."""
    env = os.environ
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(name):
            return os.path.expanduser(env[name])
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                              "huggingface")
    return os.path.join(os.path.expanduser(home), "hub")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _checked_file(spec: BackboneSpec, path: str) -> str:
    if not path or not Path(path).is_file():
        raise BackboneError(missing_weights_message(spec, f"file {path or '(none)'} does not exist"))
    return str(path)


def _hf_weights(spec: BackboneSpec, model_id: str, filename: str) -> str:
    """A Hugging Face file from the cache; downloaded only when the cache lacks it and offline mode is off."""
    from huggingface_hub import try_to_load_from_cache
    from open_clip import pretrained as ocp

    cache = hf_cache_dir()
    safe = getattr(ocp, "_get_safe_alternatives", lambda name: [])
    for name in [*safe(filename), filename]:  # open_clip prefers a .safetensors twin when there is one
        try:  # a pure file-system lookup: no request, whatever huggingface_hub's own offline flag says
            found = try_to_load_from_cache(model_id, name, cache_dir=cache)
        except Exception:
            continue
        if isinstance(found, str) and os.path.isfile(found):
            return found
    what = f"file {filename!r} of Hugging Face repo {model_id!r} is not in the cache {cache}"
    if hf_offline():
        raise BackboneError(missing_weights_message(spec, what + ", and HF_HUB_OFFLINE=1 forbids downloading it"))
    try:
        return _checked_file(spec, ocp.download_pretrained_from_hf(model_id, filename=filename, cache_dir=cache))
    except BackboneError:
        raise
    except Exception as exc:
        raise BackboneError(missing_weights_message(spec, what + ", and downloading it failed", _first_line(exc))) from None


def _url_weights(spec: BackboneSpec, url: str) -> str:
    """open_clip's URL download (it keeps files in ~/.cache/clip and checks their sha256)."""
    from open_clip import pretrained as ocp

    cache = os.path.expanduser("~/.cache/clip")
    target = os.path.join(cache, os.path.basename(url))
    what = f"file {os.path.basename(url)!r} (from {url}) is not in the cache {cache}"
    if not os.path.isfile(target) and hf_offline():
        raise BackboneError(missing_weights_message(spec, what + ", and HF_HUB_OFFLINE=1 forbids downloading it"))
    try:
        return _checked_file(spec, ocp.download_pretrained_from_url(url, cache_dir=cache))
    except BackboneError:
        raise
    except Exception as exc:
        raise BackboneError(missing_weights_message(spec, what + ", and downloading it failed", _first_line(exc))) from None


def refused_pickle_message(spec: BackboneSpec, path: str | None, exc: BaseException) -> str:
    """What a user sees when a checkpoint is a pickle that would run code when loaded."""
    import re

    found = re.search(r"GLOBAL ([\w.]+)", str(exc), re.IGNORECASE)
    culprit = f" (it references {found.group(1)})" if found else ""
    return (f"backbone {spec.key!r}: refused to load checkpoint {path}: it is a pickle that would import or call "
            f"Python objects other than tensors{culprit}, which can run arbitrary code. Only weights are loaded "
            "(torch.load weights_only=True). Use a .safetensors file, or re-save the state_dict of a model you trust "
            "with torch.save(model.state_dict(), path).")


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@contextlib.contextmanager
def _quiet_random_init(wanted: bool):
    """Random weights are asked for here (a tower about to be trained): open_clip's root-logger warning
    "No pretrained weights loaded ... initialized randomly" would only alarm the user."""
    if not wanted:
        yield
        return
    root = logging.getLogger()
    drop = lambda record: "No pretrained weights loaded" not in record.getMessage()  # noqa: E731
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def load_backbone(spec: BackboneSpec, checkpoint: str | Path | None = None, device: str = "auto",
                  weights: str | None = None) -> LoadedBackbone:
    """Build the model with its weights. `weights="random"` skips them (tests, speed benchmarks)."""
    import open_clip

    register_model_configs()
    check_model_name(spec.model)
    device = pick_device(device)
    if weights == "random":
        path, sha, pretrained = None, None, None
    else:
        path = resolve_weights(spec, checkpoint)
        sha = sha256_file(path)
        # a tag is passed as a tag so open_clip applies its preprocessing config; the file is cached now
        tag_like = not (spec.is_trained_here or looks_like_path(spec.pretrained or "") or spec.model.startswith("hf-hub:"))
        pretrained = spec.pretrained if tag_like else (None if spec.model.startswith("hf-hub:") else path)
    try:
        # weights_only=True: torch refuses pickles that would import or call anything but tensors
        with _quiet_random_init(weights == "random"):
            model, _, preprocess = open_clip.create_model_and_transforms(spec.model, pretrained=pretrained,
                                                                         device=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise BackboneError(refused_pickle_message(spec, path, exc)) from None
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as exc:  # corrupt files, wrong architecture, missing keys: one line, not a traceback
        raise BackboneError(f"backbone {spec.key!r}: open_clip could not build {spec.model} with weights "
                            f"{pretrained}: {_first_line(exc)}") from None
    model.eval()
    tokenizer = open_clip.get_tokenizer(spec.model)
    visual = model.visual
    size = visual.image_size if hasattr(visual, "image_size") else 224
    size = size[0] if isinstance(size, (tuple, list)) else size
    return LoadedBackbone(key=spec.key, model=model, preprocess=preprocess, tokenizer=tokenizer, weights_path=path,
                          weights_sha256=sha, embed_dim=int(model.text_projection.shape[1]
                                                            if getattr(model, "text_projection", None) is not None
                                                            else model.visual.output_dim),
                          image_size=int(size), device=device)


def image_gflops(loaded: LoadedBackbone) -> float | None:
    """Forward GFLOPs of the image tower for one image, counted with torch's FlopCounterMode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, loaded.image_size, loaded.image_size, device=loaded.device)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            loaded.model.encode_image(x)
        return counter.get_total_flops() / 1e9
    except Exception:  # some custom ops are not countable; cost then falls back to measured time
        return None
