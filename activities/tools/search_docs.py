"""The `search_docs` tool: keyword search over the shipped knowledge folder (markdown files)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from activities.tools.registry import Tool, ToolContext, ToolResult

MAX_SNIPPET_CHARS = 600
MAX_HITS = 2

_WORD = re.compile(r"[a-z0-9][a-z0-9_-]+")
STOPWORDS = frozenset(
    """a about after all also an and any are as at be been but by can could did do does doing
    for from get got had has have how i if in into is it its just me my no not of on or our
    out please so some tell than that the their them then there these they this to up us use
    used using was we were what when where which who whom why will with would you your
    explain describe give show want need know""".split()
)


# Only the start of a long query is searched: a run's query (which the agent passes here) may be
# longer than anything worth matching.
SEARCHED_CHARS = 2000


class SearchDocsArgs(BaseModel):
    query: Annotated[str, AfterValidator(lambda text: text[:SEARCHED_CHARS])] = Field(
        min_length=1,
        description="What to look for in the project's documentation.",
        examples=["How does a run survive a worker crash?"],
    )


@dataclass(frozen=True)
class Document:
    name: str
    paragraphs: tuple[str, ...]
    terms: frozenset[str]


def terms_of(text: str) -> list[str]:
    """The searchable terms of a text, in order, without stopwords or duplicates."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        word = word.strip("-_")
        if len(word) >= 3 and word not in STOPWORDS:
            seen.setdefault(_stem(word), None)
    return list(seen)


def _stem(word: str) -> str:
    # Crude plural folding, enough for "crashes" to find "crash" and "workers" to find "worker".
    for suffix in ("es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def load_documents(folder: Path) -> list[Document]:
    docs = []
    for path in sorted(folder.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        paragraphs = tuple(p.strip() for p in re.split(r"\n\s*\n", text) if p.strip())
        docs.append(Document(path.name, paragraphs, frozenset(terms_of(text))))
    return docs


def search(docs: list[Document], query: str) -> list[tuple[Document, str, int]]:
    """Documents sharing terms with the query, best first, each with its best paragraph."""
    wanted = terms_of(query)
    # One shared word is chance ("plan my trip" vs a page about plans); ask for two when the
    # query has two.
    needed = min(2, len(wanted))
    hits = []
    for doc in docs:
        score = sum(1 for t in wanted if t in doc.terms)
        if score == 0 or score < needed:
            continue
        body = [p for p in doc.paragraphs if not p.startswith("#")] or list(doc.paragraphs)
        best = max(body, key=lambda p: sum(1 for t in wanted if t in set(terms_of(p))))
        hits.append((doc, best, score))
    hits.sort(key=lambda h: (-h[2], h[0].name))
    # Keep only documents about as relevant as the best one.
    return [h for h in hits if h[2] >= hits[0][2] - 1][:MAX_HITS] if hits else []


def search_docs_tool(folder: Path) -> Tool:
    docs = load_documents(Path(folder))

    async def _search_docs(args: SearchDocsArgs, ctx: ToolContext) -> ToolResult:
        hits = search(docs, args.query)
        if not hits:
            return ToolResult(text=f"No document matches {args.query!r}.", empty=True)
        parts = []
        for doc, paragraph, _score in hits:
            snippet = " ".join(paragraph.split())
            if len(snippet) > MAX_SNIPPET_CHARS:
                snippet = snippet[: MAX_SNIPPET_CHARS - 1] + "…"
            parts.append(f"[{doc.name}] {snippet}")
        return ToolResult(text="\n".join(parts))

    return Tool(
        name="search_docs",
        description="Search the project's documentation (knowledge folder) by keywords.",
        args_model=SearchDocsArgs,
        func=_search_docs,
    )
