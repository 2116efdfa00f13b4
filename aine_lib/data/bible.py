"""English-Spanish Bible verse pairs from the Debian SWORD modules (public domain).

World English Bible (``engWEB2015eb``, package ``sword-text-web``) and Reina-Valera
1909 (``spaRV1909eb``, package ``sword-text-sparv``), read with ``pysword``
and paired by verse reference (book, chapter, verse); references with text in
only one of them (the two use different versifications) are dropped.

Markup: the modules are OSIS. pysword's own cleaner deletes a footnote
together with the space around it ("God<note>...</note>created" ->
"Godcreated"), so the raw OSIS is read and cleaned here: footnotes and
cross-references are removed *with* their content, every other tag is
replaced by nothing, entities are unescaped and whitespace collapsed.

Reading verse by verse decompresses the same block for every verse (slow);
the block decompression is memoised per module, which brings a whole Bible
from minutes to seconds. The pairs are cached as a TSV with a checksum
marker in the data root.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import re
from pathlib import Path

import pandas as pd

from aine_lib.data.sources import ensure_extracted
from aine_lib.cache import atomic_write_bytes

MODULES = {"en": ("sword-web", "engWEB2015eb"), "es": ("sword-rv1909", "spaRV1909eb")}
PAIRS_FILE = "bible_en_es.tsv"

_NOTE = re.compile(r"<note\b[^>]*>.*?</note>", re.DOTALL)
_SELF_CLOSING_NOTE = re.compile(r"<note\b[^>]*/>")
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def osis_to_text(raw: str) -> str:
    """Plain text of one OSIS verse: notes dropped with their content, tags dropped, spaces collapsed."""
    text = _NOTE.sub(" ", raw)
    text = _SELF_CLOSING_NOTE.sub(" ", text)
    text = _TAG.sub("", text)
    text = html.unescape(text)
    return _SPACE.sub(" ", text).strip()


def read_module(sword_dir: Path, module: str) -> dict[tuple[str, int, int], str]:
    """``{(book OSIS name, chapter, verse): text}`` of every non-empty verse of ``module``."""
    from pysword.modules import SwordModules

    modules = SwordModules(str(sword_dir))
    found = modules.parse_modules()
    if module not in found:
        raise FileNotFoundError(f"SWORD module {module} not found in {sword_dir} (found {sorted(found)})")
    bible = modules.get_bible_from_module(module)
    if hasattr(bible, "_decompressed_text"):           # one decompression per block, not per verse
        bible._decompressed_text = functools.lru_cache(maxsize=16)(bible._decompressed_text)
    verses = {}
    for testament in bible.get_structure().get_books().values():
        for book in testament:
            for chapter in range(1, book.num_chapters + 1):
                n = book.chapter_lengths[chapter - 1]
                texts = bible.get_iter(books=[book.osis_name], chapters=[chapter], verses=list(range(1, n + 1)),
                                       clean=False)
                for verse, raw in enumerate(texts, start=1):
                    text = osis_to_text(raw)
                    if text:
                        verses[(book.osis_name, chapter, verse)] = text
    return verses


def load_bible_pairs(root: Path) -> pd.DataFrame:
    """Columns book, chapter, verse, en, es (canonical order); built once, then read from the cache."""
    root = Path(root)
    cache = root / PAIRS_FILE
    marker = root / (PAIRS_FILE + ".sha256")
    if cache.exists() and marker.exists():
        recorded = json.loads(marker.read_text())
        if hashlib.sha256(cache.read_bytes()).hexdigest() == recorded.get("sha256"):
            return pd.read_csv(cache, sep="\t", keep_default_na=False, quoting=3)
    sides = {}
    for lang, (key, module) in MODULES.items():
        folder = ensure_extracted(key, root)
        sides[lang] = read_module(folder / "sword", module)
    refs = [r for r in sides["en"] if r in sides["es"]]        # English canonical order
    df = pd.DataFrame([(b, c, v, sides["en"][(b, c, v)], sides["es"][(b, c, v)]) for b, c, v in refs],
                      columns=["book", "chapter", "verse", "en", "es"])
    for col in ("en", "es"):
        df[col] = df[col].str.replace("\t", " ", regex=False)
    data = df.to_csv(sep="\t", index=False, quoting=3).encode("utf-8")
    atomic_write_bytes(cache, data)
    atomic_write_bytes(marker, json.dumps({"sha256": hashlib.sha256(data).hexdigest(), "rows": len(df)}).encode())
    return df
