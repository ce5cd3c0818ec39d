"""`synergy backbones list | add | remove`: manage the registry's backbones from the command line.

The registry file is edited as text (synergy/registry_edit.py): comments and layout are kept, the
result is validated with the registry parser, then written atomically. With `dagster dev` running,
the registry sensor (pipelines/sensors.py) picks the change up within seconds.
"""

from __future__ import annotations

import argparse


def _store_registry(args):
    from synergy.cli import _store_and_registry

    return _store_and_registry(args)


def cmd_list(args) -> int:
    store, registry = _store_registry(args)
    from synergy.summary import print_rows

    rows = []
    for b in registry.backbones:
        weights = (f"trained here ({b.train.max_images or 'all'} {b.train.dataset} images x {b.train.epochs} epoch)"
                   if b.train else b.pretrained)
        extracted = sum(store.embeddings(b.key, d).exists() for d in registry.dataset_keys)
        rows.append((b.key, b.model, b.family, weights, f"{extracted}/{len(registry.dataset_keys)}"))
    print_rows(["key", "model", "family", "weights", "extracted"], rows, title=f"backbones in {registry.path}")
    return 0


def cmd_add(args) -> int:
    _, registry = _store_registry(args)
    from synergy.registry_edit import add_entry_text, apply_edit, build_entry

    text = registry.path.read_text(encoding="utf-8")
    entry = build_entry(registry, args.key, args.model, pretrained=args.pretrained, family=args.family,
                        train_like=args.train_like, raw_text=text)
    apply_edit(registry.path, add_entry_text(text, entry, registry.path))
    how = f"trained here like {args.train_like}" if args.train_like else f"weights {entry.pretrained}"
    print(f"added backbone {entry.key!r} ({entry.model}, {entry.family}, {how}) to {registry.path}")
    print("with `dagster dev` running, the registry sensor adds its partition and starts its runs; "
          "otherwise run `synergy demo`")
    return 0


def cmd_remove(args) -> int:
    _, registry = _store_registry(args)
    from synergy.registry_edit import apply_edit, remove_entry_text

    registry.backbone(args.key)  # a clear error for an unknown key
    apply_edit(registry.path, remove_entry_text(registry.path.read_text(encoding="utf-8"), args.key, registry.path))
    print(f"removed backbone {args.key!r} from {registry.path}; its files in the store are kept. With `dagster dev` "
          "running, the registry sensor drops its partition and refreshes the analyses without it")
    return 0


def add_backbones_parser(sub: argparse._SubParsersAction) -> None:
    backbones = sub.add_parser("backbones", help="list, add or remove backbones in the registry file")
    bsub = backbones.add_subparsers(dest="backbones_command", required=True)
    b_list = bsub.add_parser("list", help="the registry's backbones and how many datasets each has extracted")
    b_list.set_defaults(func=cmd_list)
    b_add = bsub.add_parser("add", help="add a backbone (validated; the file's comments are kept)")
    b_add.add_argument("key", help="registry key: [a-z0-9][a-z0-9._-]*")
    b_add.add_argument("--model", required=True, help="open_clip model name (or hf-hub:<id>)")
    weights = b_add.add_mutually_exclusive_group(required=True)
    weights.add_argument("--pretrained", help="open_clip pretrained tag, or a local checkpoint file")
    weights.add_argument("--train-like", metavar="KEY",
                         help="train it here with the training budget of this existing demo backbone")
    b_add.add_argument("--family", help="resnet, vit, convnext or other (default: from the model's config)")
    b_add.set_defaults(func=cmd_add)
    b_remove = bsub.add_parser("remove", help="remove a backbone from the registry (its stored files are kept)")
    b_remove.add_argument("key")
    b_remove.set_defaults(func=cmd_remove)
