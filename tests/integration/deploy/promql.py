"""Extract the metric names a PromQL expression reads.

Why not a full PromQL parser: none ships on PyPI for Python, and the question we
ask is narrow (which series names does this query select?). A tokenizer that
knows where names cannot appear (strings, label matchers, ranges, grouping
clauses, function calls, keywords, numbers, Grafana variables) answers it
exactly for the PromQL our dashboards and rules use, and fails loudly on
unbalanced brackets instead of guessing.
"""

from __future__ import annotations

import re

#: Words that look like identifiers but are PromQL syntax, not series names.
KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "atan2",
        "inf",
        "nan",
    }
)

#: Clauses followed by a parenthesised list of label names, never metric names.
_LABEL_LIST_CLAUSES = ("by", "without", "on", "ignoring", "group_left", "group_right")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_DURATION = re.compile(r"(?<![\w:])(?:\d+(?:ms|s|m|h|d|w|y))+(?![\w:])")
_NUMBER = re.compile(r"(?<![\w:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)")
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


class PromQLSyntaxError(ValueError):
    """The expression has unbalanced brackets or quotes: refuse to guess."""


def _remove_bracketed(text: str, opening: str, closing: str, replacement: str) -> str:
    """Replace every outermost ``opening ... closing`` span (no nesting expected inside)."""
    out: list[str] = []
    depth = 0
    for char in text:
        if char == opening:
            if depth == 0:
                out.append(replacement)
            depth += 1
            continue
        if char == closing:
            depth -= 1
            if depth < 0:
                raise PromQLSyntaxError(f"unbalanced {closing!r}")
            continue
        if depth == 0:
            out.append(char)
    if depth:
        raise PromQLSyntaxError(f"unbalanced {opening!r}")
    return "".join(out)


def _remove_label_lists(text: str) -> str:
    """Drop ``by (a, b)``-style clauses: their contents are label names."""
    pattern = re.compile(r"\b(" + "|".join(_LABEL_LIST_CLAUSES) + r")\s*\(([^()]*)\)")
    previous = None
    while previous != text:
        previous = text
        text = pattern.sub(" ", text)
    return text


def metric_names(expr: str) -> set[str]:
    """Every series name selected by ``expr`` (PromQL, optionally with Grafana variables)."""
    if expr.count("(") != expr.count(")"):
        raise PromQLSyntaxError(f"unbalanced parentheses in {expr!r}")
    text = _STRING.sub('""', expr)
    if '"' in _STRING.sub("", text) or "'" in _STRING.sub("", text):
        raise PromQLSyntaxError(f"unterminated string in {expr!r}")
    text = _GRAFANA_VARIABLE.sub(" ", text)
    text = _remove_bracketed(text, "{", "}", " ")
    text = _remove_bracketed(text, "[", "]", " ")
    text = _remove_label_lists(text)
    text = _DURATION.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group(0)
        rest = text[match.end() :].lstrip()
        if rest.startswith("("):
            continue  # function or aggregation call
        if word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


_LABEL_VALUES = re.compile(r"^\s*label_values\s*\((.*)\)\s*$", re.DOTALL)


def template_query_metric_names(query: str) -> set[str]:
    """Names read by a Grafana template-variable query (``label_values(expr, label)``)."""
    match = _LABEL_VALUES.match(query)
    if not match:
        return metric_names(query)
    inner = match.group(1)
    # The last top-level comma separates the selector from the label name.
    depth = 0
    split_at = None
    for index, char in enumerate(inner):
        if char in "({[":
            depth += 1
        elif char in ")}]":
            depth -= 1
        elif char == "," and depth == 0:
            split_at = index
    if split_at is None:
        return set()  # label_values(label): a label name, no series selector
    return metric_names(inner[:split_at])
