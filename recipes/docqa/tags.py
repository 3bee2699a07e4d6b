"""The two-level tag tree: derived from the documents' titles and headings, filled in by the model's
labels, saved as an editable `tags.yaml` in the run folder and respected on the next run.

    tree:                       # level 1 → level 2; edit freely: a new tag gets its own questions
      安装手册: [环境要求, 安装步骤]
    chunks:                     # chunk id → tag: the model's labels; change one to relabel a chunk
      3f2a…: 安装手册/环境要求    # (items not yet run use it instead of asking the model)

>>> from recipes.docqa.corpus import DocChunk
>>> c = DocChunk("h", "d/a.md#0", "d/a.md", "/d/a.md", "s", 0, "正文", "安装步骤", "安装手册")
>>> heading_tag(c), derive_tree([c])
('安装手册/安装步骤', {'安装手册': ['安装步骤']})
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from agents.errors import InputError, not_valid_yaml
from recipes.docqa.corpus import DocChunk

TAGS_FILE = "tags.yaml"
MAX_LEVEL2 = 30  # per level-1 tag; a document with hundreds of headings keeps its first 30
HEADER = """# The tag tree of this run (two levels), derived from the documents' titles and headings and filled
# in by the model's labels. Edit it: rename, add or remove tags; a new tag gets its own questions on the
# next run. `chunks` maps a chunk id to its tag: change one to relabel a chunk not yet used.
"""


def _short(text: str) -> str:
    return " ".join(text.replace("/", "／").split())[:30]


def heading_tag(chunk: DocChunk) -> str:
    """The tag a chunk gets from its document title and the heading in force (or the first heading
    inside it, for a chunk that starts with the title)."""
    level1 = _short(chunk.doc_title)
    candidates = [_short(h) for h in [chunk.heading or "", *chunk.inner] if h]
    level2 = next((h for h in candidates if h != level1), "")
    return f"{level1}/{level2}" if level2 else level1


def derive_tree(chunks: list[DocChunk]) -> dict[str, list[str]]:
    """Level 1: each document's title (its first heading, else its file name); level 2: its headings, in
    the document's order (a chunk's own tag is the last of the short sections it holds, so it comes after
    the headings inside it).

    >>> from recipes.docqa.corpus import DocChunk
    >>> c = DocChunk("h", "d/a.md#0", "d/a.md", "/d/a.md", "s", 0, "正文", "滤芯", "手册", ["手册", "安装", "滤芯"])
    >>> derive_tree([c])
    {'手册': ['安装', '滤芯']}
    """
    tree: dict[str, list[str]] = {}
    for chunk in chunks:
        level1 = _short(chunk.doc_title)
        for inner in chunk.inner:
            if _short(inner) != level1:
                add_path(tree, f"{level1}/{_short(inner)}")
        add_path(tree, heading_tag(chunk))
    return tree


def add_path(tree: dict[str, list[str]], path: str) -> None:
    level1, _, level2 = path.partition("/")
    children = tree.setdefault(level1, [])
    if level2 and level2 not in children and len(children) < MAX_LEVEL2:
        children.append(level2)


def leaves(tree: dict[str, list[str]]) -> list[str]:
    """Every tag to ask about: each level-2 tag, or the level-1 tag when it has none.

    >>> leaves({"甲": ["一", "二"], "乙": []})
    ['甲/一', '甲/二', '乙']
    """
    return [f"{l1}/{l2}" for l1, l2s in tree.items() for l2 in l2s] + [l1 for l1, l2s in tree.items() if not l2s]


def paths(tree: dict[str, list[str]]) -> list[str]:
    return [p for l1, l2s in tree.items() for p in ([l1] + [f"{l1}/{l2}" for l2 in l2s])]


def read_tags(path: Path) -> tuple[dict[str, list[str]], dict[str, str]] | None:
    """(tree, chunk labels) from a tags.yaml, None when there is none; a broken file is a one-line error."""
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise not_valid_yaml(path, exc) from None
    expected = "expected 'tree' (level-1 tag → list of level-2 tags) and 'chunks' (id → tag)"
    if not isinstance(data, dict):
        raise InputError(f"{path}: {expected}")
    if unknown := [str(key) for key in data if key not in ("tree", "chunks")]:  # e.g. the tree without `tree:`
        raise InputError(f"{path}: unknown key {', '.join(map(repr, unknown))}: {expected}; "
                         f"put level-1 tags under 'tree:'")
    tree, chunks = data.get("tree") or {}, data.get("chunks") or {}
    if not isinstance(tree, dict) or not isinstance(chunks, dict):
        raise InputError(f"{path}: {expected}")
    clean: dict[str, list[str]] = {}
    for level1, level2s in tree.items():
        if level2s is not None and not isinstance(level2s, list):
            raise InputError(f"{path}: tree.{level1} must be a list of level-2 tags")
        clean[str(level1)] = [str(x) for x in level2s or []]
    return clean, {str(k): str(v) for k, v in chunks.items()}


def write_tags(path: Path, tree: dict[str, list[str]], chunks: dict[str, str]) -> None:
    body = yaml.safe_dump({"tree": tree, "chunks": chunks}, allow_unicode=True, sort_keys=False, width=120)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(HEADER + body, encoding="utf-8")
    tmp.replace(path)


def tree_for_run(saved: tuple[dict[str, list[str]], dict[str, str]] | None, config_tags: dict[str, list[str]],
                 chunks: list[DocChunk]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The tree in force: the run's tags.yaml (else the recipe YAML's `tags`), plus the heading tags of
    chunks it has no label for yet (new documents); and the chunk labels it holds."""
    tree, labels = (dict(saved[0]), dict(saved[1])) if saved else ({k: list(v) for k, v in config_tags.items()}, {})
    new = [chunk for chunk in chunks if chunk.hash not in labels]
    for path in paths(derive_tree(new)):
        add_path(tree, path)
    return tree, labels


def merge_labels(tree: dict[str, list[str]], labels: dict[str, str], records: list[dict[str, Any]]) -> int:
    """Add the labels the run gave (meta.tag of accepted samples) for chunks not labelled yet; the
    model's new tags join the tree. Returns how many labels were added."""
    added = 0
    for record in records:
        meta = record.get("meta") or {}
        if meta.get("item_kind") != "chunk" or not meta.get("tag") or meta.get("tag_fallback"):
            continue
        for chunk_hash in meta.get("chunk_hashes") or []:
            if chunk_hash not in labels:
                labels[chunk_hash] = meta["tag"]
                add_path(tree, meta["tag"])
                added += 1
    return added
