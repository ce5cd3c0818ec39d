"""Edit the registry file from the command line (`synergy backbones add/remove`) without losing its comments.

The file is edited as text, not re-dumped: PyYAML's composer gives the line span of every entry of
the `backbones:` list, a new entry is inserted after the last one (same indentation, one key per
line, the training budget as a one-line flow mapping), and a removed entry's lines are cut out.
Comments, blank lines, key order and the other sections stay exactly as they were. A YAML anchor
defined inside a removed entry (the demo's `&demo-budget`) moves to the next entry that uses it.
The result is parsed with the registry's own parser before anything is written, and the file is
replaced atomically (temporary file in the same folder, then rename), so a running sensor never
reads half a file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from synergy.errors import RegistryError
from synergy.registry import FAMILIES, Registry, TrainSpec, check_key, parse_registry


@dataclass(frozen=True)
class NewBackbone:
    key: str
    model: str
    family: str
    pretrained: str | None = None
    train: TrainSpec | None = None
    train_alias: str | None = None  # reuse `*alias` for the budget instead of writing it out


def _scalar(value) -> str:
    """A YAML scalar: plain when safe, JSON-style double quotes otherwise."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9_./+-][A-Za-z0-9_./+ :-]*", text) and not text.endswith(":") and ": " not in text:
        try:
            if yaml.safe_load(text) == text:
                return text
        except yaml.YAMLError:
            pass
    return json.dumps(text)


def _train_flow(train: TrainSpec) -> str:
    fields = {"dataset": train.dataset, "epochs": train.epochs, "batch_size": train.batch_size, "lr": train.lr,
              "weight_decay": train.weight_decay, "seed": train.seed}
    if train.max_images is not None:
        fields["max_images"] = train.max_images
    return "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in fields.items()) + "}"


def render_entry(entry: NewBackbone, dash_indent: int, key_indent: int) -> list[str]:
    pad = " " * key_indent
    lines = [" " * dash_indent + "-" + " " * (key_indent - dash_indent - 1) + f"key: {_scalar(entry.key)}",
             f"{pad}model: {_scalar(entry.model)}", f"{pad}family: {_scalar(entry.family)}"]
    if entry.pretrained is not None:
        lines.append(f"{pad}pretrained: {_scalar(entry.pretrained)}")
    if entry.train_alias:
        lines.append(f"{pad}train: *{entry.train_alias}")
    elif entry.train is not None:
        lines.append(f"{pad}train: {_train_flow(entry.train)}")
    return lines


def _compose(text: str, path) -> yaml.Node | None:
    try:
        return yaml.compose(text)
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from None


def _backbones_node(root, path):
    """(key node, value node) of the top-level `backbones` entry, or (None, None)."""
    if root is None:
        return None, None
    if not isinstance(root, yaml.MappingNode):
        raise RegistryError(f"{path}: top level must be a mapping")
    for k, v in root.value:
        if isinstance(k, yaml.ScalarNode) and k.value == "backbones":
            return k, v
    return None, None


def _item_key(item) -> str | None:
    if isinstance(item, yaml.MappingNode):
        for k, v in item.value:
            if isinstance(k, yaml.ScalarNode) and k.value == "key" and isinstance(v, yaml.ScalarNode):
                return v.value
    return None


def _is_code(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def add_entry_text(text: str, entry: NewBackbone, path="<registry>") -> str:
    """The registry text with `entry` appended to the `backbones:` list."""
    lines = text.splitlines()
    root = _compose(text, path)
    key_node, seq = _backbones_node(root, path)
    if key_node is None:  # no backbones section yet: append one
        block = ["", "backbones:", *render_entry(entry, 2, 4)]
        return "\n".join(lines + block) + "\n"
    if isinstance(seq, yaml.SequenceNode) and seq.flow_style and seq.value:
        raise RegistryError(f"{path}: `backbones:` is written as a one-line [..] list; "
                            "write it as a block list (one `- key: ...` entry per line) to use this command")
    if not isinstance(seq, yaml.SequenceNode) or not seq.value:  # `backbones:`, `backbones: []` or `backbones: ~`
        line_no = key_node.start_mark.line
        lines[line_no] = lines[line_no][:key_node.start_mark.column] + "backbones:"
        indent = key_node.start_mark.column
        new = render_entry(entry, indent + 2, indent + 4)
        return "\n".join(lines[:line_no + 1] + new + lines[line_no + 1:]) + "\n"
    items = seq.value
    first = items[0]
    dash_indent = len(lines[first.start_mark.line]) - len(lines[first.start_mark.line].lstrip())
    key_indent = first.start_mark.column if first.start_mark.column > dash_indent else dash_indent + 2
    last = items[-1]
    end = min(last.end_mark.line + (1 if last.end_mark.column > 0 else 0), len(lines))
    insert_after = max(i for i in range(last.start_mark.line, max(end, last.start_mark.line + 1)) if _is_code(lines[i]))
    new = render_entry(entry, dash_indent, key_indent)
    return "\n".join(lines[:insert_after + 1] + new + lines[insert_after + 1:]) + "\n"


def remove_entry_text(text: str, key: str, path="<registry>") -> str:
    """The registry text without the backbone `key`; its anchors move to the next entry that uses them."""
    lines = text.splitlines()
    root = _compose(text, path)
    _, seq = _backbones_node(root, path)
    items = list(seq.value) if isinstance(seq, yaml.SequenceNode) else []
    index = next((i for i, item in enumerate(items) if _item_key(item) == key), None)
    if index is None:
        raise RegistryError(f"{path}: no backbone {key!r} to remove")
    if seq.flow_style:
        raise RegistryError(f"{path}: `backbones:` is a one-line [..] list; edit it by hand")
    item = items[index]
    start = item.start_mark.line
    if index + 1 < len(items):
        stop = items[index + 1].start_mark.line
    else:
        stop = min(item.end_mark.line + (1 if item.end_mark.column > 0 else 0), len(lines))
    # keep trailing comments/blank lines that sit at the list's indentation (they introduce what follows)
    dash_indent = len(lines[start]) - len(lines[start].lstrip())
    while stop - 1 > start and not _is_code(lines[stop - 1]) and (
            not lines[stop - 1].strip() or len(lines[stop - 1]) - len(lines[stop - 1].lstrip()) <= dash_indent):
        stop -= 1
    removed, rest_before, rest_after = lines[start:stop], lines[:start], lines[stop:]
    for anchor, value in _anchors(removed):
        alias = re.compile(r"\*" + re.escape(anchor) + r"(?![A-Za-z0-9_-])")
        if not any(alias.search(line) for line in rest_after):
            continue
        if value is None:
            raise RegistryError(f"{path}: backbone {key!r} defines the YAML anchor &{anchor} over several lines and "
                                f"other entries use it; move the anchor by hand, then remove {key!r}")
        for i, line in enumerate(rest_after):
            if alias.search(line):
                rest_after[i] = alias.sub(lambda _m: f"&{anchor} {value}", line, count=1)
                break
    return "\n".join(rest_before + rest_after) + "\n"


def _anchors(lines: list[str]) -> list[tuple[str, str | None]]:
    """(name, one-line value text or None) of every `&anchor` in `lines`."""
    found = []
    for line in lines:
        for m in re.finditer(r"&([A-Za-z0-9_-]+)[ \t]*(.*)$", line):
            value = m.group(2).split(" #")[0].strip()
            one_line = value and (value[0] not in "{[" or _balanced(value))
            found.append((m.group(1), value if one_line else None))
    return found


def _balanced(value: str) -> bool:
    try:
        yaml.safe_load(value)
        return True
    except yaml.YAMLError:
        return False


def infer_family(model: str) -> str:
    """resnet / vit / convnext / other, from open_clip's model config (the tower type)."""
    import open_clip

    from synergy.backbones import register_model_configs

    register_model_configs()
    cfg = open_clip.get_model_config(model) if not model.startswith(("hf-hub:", "local-dir:")) else None
    name = model.lower()
    if cfg:
        vision = cfg.get("vision_cfg", {})
        timm_name = str(vision.get("timm_model_name") or "").lower()
        if "convnext" in timm_name:
            return "convnext"
        if isinstance(vision.get("layers"), (list, tuple)) or timm_name.startswith("resnet"):
            return "resnet"
        if timm_name.startswith(("vit", "deit", "eva")) or "patch_size" in vision:
            return "vit"
    if "convnext" in name:
        return "convnext"
    if re.search(r"(^|[^a-z])(rn|resnet)", name):
        return "resnet"
    if "vit" in name:
        return "vit"
    return "other"


def build_entry(registry: Registry, key: str, model: str, pretrained: str | None = None,
                family: str | None = None, train_like: str | None = None, raw_text: str = "") -> NewBackbone:
    """Validate the command's arguments against the registry and open_clip; RegistryError/BackboneError if bad."""
    from synergy.backbones import check_model_name, looks_like_path

    check_key(key)
    if key in registry.backbone_keys:
        raise RegistryError(f"{registry.path}: backbone {key!r} already exists; remove it first or pick another key")
    if (pretrained is None) == (train_like is None):
        raise RegistryError("give exactly one of --pretrained (an open_clip tag or a checkpoint file) and "
                            "--train-like (an existing demo backbone whose training budget to copy)")
    check_model_name(model)
    if family is None:
        family = infer_family(model)
    elif family not in FAMILIES:
        raise RegistryError(f"family {family!r} must be one of {', '.join(FAMILIES)}")
    train, alias = None, None
    if train_like is not None:
        source = registry.backbone(train_like)
        if source.train is None:
            raise RegistryError(f"{registry.path}: backbone {train_like!r} is not trained here (it has "
                                f"`pretrained: {source.pretrained}`), so it has no training budget to copy")
        train, alias = source.train, _train_alias(raw_text, train_like)
    else:
        if model.startswith(("hf-hub:", "local-dir:")):
            raise RegistryError(f"{model} names its own weights; --pretrained does not apply (omit the model prefix "
                                "or give the weights through the hub id)")
        if looks_like_path(pretrained):
            path = Path(pretrained).expanduser()
            if not path.is_file():
                raise RegistryError(f"checkpoint file {path} does not exist")
            pretrained = str(path.resolve())
        else:
            import open_clip

            if not open_clip.get_pretrained_cfg(model, pretrained):
                tags = open_clip.list_pretrained_tags_by_model(model)
                raise RegistryError(f"open_clip has no pretrained tag {pretrained!r} for {model}; valid tags: "
                                    f"{', '.join(tags) if tags else 'none (give a checkpoint file path instead)'}")
    return NewBackbone(key=key, model=model, family=family, pretrained=pretrained, train=train, train_alias=alias)


def _train_alias(text: str, key: str) -> str | None:
    """The anchor/alias name the entry `key` uses for its `train:` value, if any (`&demo-budget` / `*demo-budget`)."""
    root = yaml.compose(text) if text else None
    _, seq = _backbones_node(root, "<registry>") if root is not None else (None, None)
    if not isinstance(seq, yaml.SequenceNode):
        return None
    lines = text.splitlines()
    for item in seq.value:
        if _item_key(item) != key:
            continue
        for k, v in item.value:
            if isinstance(k, yaml.ScalarNode) and k.value == "train":
                line = lines[k.start_mark.line][k.end_mark.column:]
                m = re.match(r"\s*:\s*[&*]([A-Za-z0-9_-]+)", line)
                return m.group(1) if m else None
    return None


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` in one rename (same folder, fsynced); keeps the file's mode."""
    path = Path(path)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def apply_edit(path: Path, new_text: str) -> Registry:
    """Validate `new_text` as a registry (same errors as loading it), then write it atomically."""
    registry = parse_registry(new_text, path)
    write_atomic(path, new_text)
    return registry
