"""What a Cosmos DB SQL query makes the service load: a small classifier of its WHERE clause.

API: ``parse_query(sql) -> QueryShape`` (``alias``, ``top``, ``aggregate``, ``conjuncts``, ``scope`` (the
index-served conjuncts joined by AND, or ``"true"``), ``where`` (the whole filter), ``index_only`` (the whole filter
is served by the index)).

Rules (sources: Microsoft Learn, "Troubleshoot query issues" (troubleshoot-query-performance), "Indexing
overview" and each system function's reference page under nosql/query/; checked 2026-12-04, /work/shared/README.md):
- The top-level filter is split at AND. A conjunct is *index-served* when it only compares paths with literals or
  parameters (=, !=, <, <=, >, >=, IN, BETWEEN) and calls only functions whose page says they use the index:
  IS_DEFINED, IS_NULL, IS_STRING, IS_NUMBER, IS_BOOL, IS_ARRAY, IS_OBJECT, IS_PRIMITIVE, STARTSWITH, ARRAY_CONTAINS,
  StringEquals; ENDSWITH and CONTAINS ("full index scan": the index, not the documents) and SUBSTRING only from
  position 0 (its page: "uses the index only when the start position is 0").
- LENGTH, LOWER, UPPER (the troubleshooting page's example), SUBSTRING from another position, any other function,
  and any reference to ``_etag`` (excluded from the default indexing policy) make a conjunct *unindexed*: the
  service loads every document in the scope the index-served conjuncts leave and evaluates it there.
- NOT and OR keep a group index-served only when every operand is (guess: Azure may still scan parts of the index
  for NOT; it does not load documents for it).
- A COUNT (or other aggregate) is answered from the index when the whole filter is index-served; otherwise it loads
  its scope like any query (shared README, "a COUNT whose filter the index cannot fully serve falls back to loading
  documents").
Not modelled (guesses on the safe side): composite indexes, ORDER BY cost, GROUP BY, JOINs (a JOIN makes the shape
``unparsed``: the whole container is treated as scope and the filter as unindexed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INDEXED_FUNCTIONS = frozenset({
    "IS_DEFINED", "IS_NULL", "IS_STRING", "IS_NUMBER", "IS_BOOL", "IS_ARRAY", "IS_OBJECT", "IS_PRIMITIVE",
    "STARTSWITH", "ENDSWITH", "CONTAINS", "ARRAY_CONTAINS", "STRINGEQUALS",
})  # fmt: skip
AGGREGATES = frozenset({"COUNT", "SUM", "MIN", "MAX", "AVG"})
UNINDEXED_PATHS = ("_etag",)

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_CALL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_HEAD = re.compile(
    r"^\s*SELECT\s+(?:DISTINCT\s+)?(?:TOP\s+(\d+)\s+)?(.*?)\s+FROM\s+(\w+)(?:\s+(?:AS\s+)?(?!(?:WHERE|ORDER|GROUP|OFFSET|JOIN)\b)(\w+))?(.*)$",
    re.IGNORECASE | re.DOTALL,
)
_TAIL = re.compile(r"\b(ORDER\s+BY|GROUP\s+BY|OFFSET)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Conjunct:
    text: str
    indexed: bool
    reason: str = ""  # why not indexed


@dataclass(frozen=True)
class QueryShape:
    alias: str
    top: int | None
    aggregate: bool
    conjuncts: tuple[Conjunct, ...]
    unparsed: bool = False

    @property
    def where(self) -> str:
        return " AND ".join(_operand(c.text) for c in self.conjuncts) or "true"

    @property
    def scope(self) -> str:
        """The filter the index answers; every document it leaves is loaded when ``index_only`` is false."""
        return " AND ".join(_operand(c.text) for c in self.conjuncts if c.indexed) or "true"

    @property
    def index_only(self) -> bool:
        return not self.unparsed and all(c.indexed for c in self.conjuncts)


def _operand(text: str) -> str:
    """A conjunct as an operand of AND: parenthesised only when it has a top-level OR (cosmosdb-server's parser
    slows down by orders of magnitude on needless nested parentheses: 36 s instead of 0.5 s for one probe)."""
    return f"({text})" if len(_split_top(text, "OR")) > 1 else text


def _mask_strings(sql: str) -> str:
    """The same text with string literals blanked (same length), so keywords inside them are not seen."""
    return _STRING.sub(lambda m: '"' + "_" * (len(m.group()) - 2) + '"', sql)


def _split_top(text: str, keyword: str) -> list[str]:
    """Split at a keyword (AND / OR) outside parentheses, brackets and string literals."""
    masked = _mask_strings(text)
    parts, depth, start = [], 0, 0
    pattern = re.compile(rf"\b{keyword}\b", re.IGNORECASE)
    i = 0
    while i < len(masked):
        ch = masked[i]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and (m := pattern.match(masked, i)) and (i == 0 or not masked[i - 1].isalnum()):
            parts.append(text[start:i].strip())
            start = i = m.end()
            continue
        i += 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _unwrap(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        masked, depth = _mask_strings(text), 0
        for i, ch in enumerate(masked):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(masked) - 1:
                return text  # "(a) AND (b)": the first paren closes early
        text = text[1:-1].strip()
    return text


def _atom_reason(text: str) -> str:
    """Why an atom (no top-level AND/OR) is not index-served, or "" when it is."""
    masked = _mask_strings(text)
    if any(re.search(rf"\.{p}\b|\[\s*\"{p}\"\s*\]|\['{p}'\]", text) for p in UNINDEXED_PATHS):
        return "_etag is excluded from the default index"
    for m in _CALL.finditer(masked):
        name = m.group(1).upper()
        if name in ("NOT", "IN"):  # operators, not functions: `x IN (...)` is an equality lookup the index serves
            continue
        if name == "SUBSTRING":
            args = _args(masked[m.end() : _close(masked, m.end() - 1)])
            if len(args) < 2 or args[1] != "0":
                return "SUBSTRING from a position other than 0 does not use the index"
            continue
        if name not in INDEXED_FUNCTIONS:
            return f"{name} does not use the index"
    return ""


def _args(masked: str) -> list[str]:
    """A call's arguments (commas at depth 0), from string-masked text."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(masked):
        depth += ch in "(["
        depth -= ch in ")]"
        if ch == "," and depth == 0:
            out.append(masked[start:i].strip())
            start = i + 1
    out.append(masked[start:].strip())
    return out


def _close(masked: str, open_index: int) -> int:
    depth = 0
    for i in range(open_index, len(masked)):
        depth += masked[i] == "("
        depth -= masked[i] == ")"
        if depth == 0:
            return i
    return len(masked)


def _reason(text: str) -> str:
    text = _unwrap(text)
    for keyword in ("OR", "AND"):
        parts = _split_top(text, keyword)
        if len(parts) > 1:
            return next((r for r in map(_reason, parts) if r), "")
    if re.match(r"NOT\b", text, re.IGNORECASE):
        return _reason(text[3:])
    return _atom_reason(text)


def _flatten(text: str) -> list[str]:
    text = _unwrap(text)
    parts = _split_top(text, "AND")
    if len(parts) == 1:
        return [text]
    return [c for p in parts for c in _flatten(p)]


def parse_query(sql: str) -> QueryShape:
    m = _HEAD.match(sql)
    if not m:
        return QueryShape("c", None, False, (Conjunct(sql, False, "not a SELECT ... FROM query"),), unparsed=True)
    top = int(m.group(1)) if m.group(1) else None
    projection, source, alias, rest = m.group(2), m.group(3), m.group(4), m.group(5)
    aggregate = any(f.upper() in AGGREGATES for f in _CALL.findall(_mask_strings(projection)))
    rest_masked = _mask_strings(rest)
    if re.search(r"\bJOIN\b", rest_masked, re.IGNORECASE):
        return QueryShape(alias or source, top, aggregate, (Conjunct(rest, False, "JOIN"),), unparsed=True)
    where_at = re.search(r"\bWHERE\b", rest_masked, re.IGNORECASE)
    where = ""
    if where_at:
        where = rest[where_at.end() :]
        tail = _TAIL.search(_mask_strings(where))
        if tail:
            where = where[: tail.start()]
    conjuncts = []
    for text in _flatten(where) if where.strip() else []:
        if text.strip().lower() == "true":
            continue
        reason = _reason(text)
        conjuncts.append(Conjunct(text, not reason, reason))
    return QueryShape(alias or source, top, aggregate, tuple(conjuncts))
