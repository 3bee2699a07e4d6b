"""`zaoshu new NAME --knowledge DIR`: an editable docqa recipe YAML for your folders, with the tag tree
derived from their titles and headings and genre × audience pairs (proposed by the model when an
endpoint is configured, else a generic four), and how to run it.

    zaoshu new 净水器 --knowledge docs/
    python -m recipes.docqa --config 净水器.yaml
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Optional

import typer
import yaml

from agents.console import make_console
from agents.errors import InputError

HEADER = """# docqa recipe for «{name}», written by `zaoshu new`. Edit anything below, then run:
#   python -m recipes.docqa --config {path}
# Keys: recipes/docqa/docqa.yaml explains each one. `tags` is the starting tag tree (level 1 → level 2),
# derived from your documents' titles and headings; `ga_pairs` the genre × audience pairs{ga_note}.
"""


def new(name: str = typer.Argument(..., help="The dataset's name; the YAML is NAME.yaml."),
        knowledge: list[Path] = typer.Option(..., "--knowledge", help="A folder of your documents (repeatable)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Where to write the YAML (default ./NAME.yaml)."),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
        text_field: Optional[list[str]] = typer.Option(
            None, "--text-field", help="A field of JSON/JSONL/CSV records that holds text (repeatable; default: "
                                       "text, content, output); written to the YAML's text_fields.")) -> None:
    """Write an editable docqa recipe YAML for your own folders and print how to run it."""
    from agents.docqa import DEFAULT_GA_PAIRS
    from knowledge.loaders import check_folder
    from recipes.docqa.corpus import scan_corpus
    from recipes.docqa.recipe import DocQAConfig, corpus_digest, no_text_error, skip_report
    from recipes.docqa.tags import derive_tree

    console = make_console()
    _check_name(name)
    path = out or Path(f"{name}.yaml")
    if path.is_dir():  # before the GA-pairs call: it ended in an IsADirectoryError after it, with --force
        raise InputError(f"--out {path} is a folder: give the YAML file, e.g. --out {path / (name + '.yaml')}")
    if path.exists() and not force:
        raise InputError(f"{path} exists; choose another --out or pass --force")
    for folder in knowledge:
        check_folder(folder)
    corpus = scan_corpus(knowledge, **({"text_fields": tuple(text_field)} if text_field else {}))
    if not corpus.chunks:
        raise no_text_error(corpus)
    config = DocQAConfig.model_validate({"recipe": "docqa", "name": name})
    pairs, note = _ga_pairs(corpus_digest(corpus), config.ga_count)
    if pairs is None:
        pairs = DEFAULT_GA_PAIRS
    base = path.resolve().parent
    folders = [os.path.relpath(f.resolve(), base) for f in knowledge]
    data = {"recipe": "docqa", "name": name, "knowledge_folder": folders[0], "extra_knowledge_folders": folders[1:],
            "mix": config.mix.model_dump(), "max_items": None, "questions_per_tag": config.questions_per_tag,
            "ga_pairs": pairs,
            **({"text_fields": list(text_field)} if text_field else {}),
            "tags": derive_tree([c for c in corpus.chunks if len(c.text.strip()) >= config.min_chunk_chars]), "multi_turn": {"every": 0, "turns": [2, 3]}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER.format(name=name, path=path, ga_note=note)
                    + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=120), encoding="utf-8")
    files = len({c.path for c in corpus.chunks})
    console.print(f"wrote {path}: {len(corpus.chunks)} chunks from {files} files; {len(data['tags'])} top-level "
                  f"tags, {sum(len(v) for v in data['tags'].values())} second-level; {len(pairs)} GA pairs{note}",
                  highlight=False)
    for line in skip_report(corpus):  # what was not read, as the run will say it
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"run it:  python -m recipes.docqa --config {path}   (add --dry-run to see the plan first)",
                  highlight=False)


def _check_name(name: str) -> None:
    """`InputError` for a NAME that is no dataset name: blank (it wrote a hidden `.yaml`), with a path separator
    (`a/b` wrote a/b.yaml and kept its index in runs/docqa/index-a/b/), or a file name (`hr.yaml.yaml`)."""
    example = "e.g. `zaoshu new hr-handbook --knowledge docs`"
    if not name.strip():
        raise InputError(f"NAME is blank: give the dataset a name, {example}")
    if "/" in name or "\\" in name:
        raise InputError(f"NAME {name!r} holds a path separator: give a plain name, and the YAML's folder with "
                         f"--out DIR/NAME.yaml")
    if name.lower().endswith((".yaml", ".yml")):
        raise InputError(f"NAME {name!r} is a file name: give the dataset's name alone (the YAML is NAME.yaml), "
                         f"or the file with --out")


def _ga_pairs(digest: str, count: int) -> tuple[list[dict[str, str]] | None, str]:
    """Pairs from the configured model, or (None, why) when there is no endpoint or no usable reply."""
    from agents.docqa import propose_ga_pairs
    from agents.errors import ConfigError
    from agents.llm import make_client
    from agents.llm_errors import LLMError
    from agents.settings import load_settings

    try:
        cfg = load_settings({}).for_role("asker").require_endpoint()
    except ConfigError:
        return None, " (generic: no LLM endpoint configured — set one and rerun, or edit them)"

    async def ask() -> list[dict[str, str]] | None:
        client = make_client(cfg)
        try:
            return await propose_ga_pairs(client, digest, count)
        finally:
            await client.aclose()

    try:
        pairs = asyncio.run(ask())
    except LLMError as exc:
        return None, f" (generic: the model could not be asked: {exc})"
    return (pairs, f" (proposed by {cfg.model})") if pairs else (None, " (generic: the model gave no usable list)")
