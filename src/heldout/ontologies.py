"""Ontology terms as the CELLxGENE schema uses them, through cellxgene-ontology-guide.

The guide ships each ontology at the version a CELLxGENE schema release pins
(7.0.0 and 7.1.0 in the installed guide), so every check here is offline and
reproducible. :class:`TermRule` is the declarative form of one column's
requirement (which ontologies, under which roots, which terms are forbidden,
which special values, several terms or one); rules are written in the pandera
schemas under ``schemas/`` and evaluated here, once per distinct value.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field

DELIMITER = " || "  # CELLxGENE schema 6+: several terms, sorted, no duplicates
LATEST = "latest"  # the newest schema version the installed guide knows (what the mini-Census labels use)
TERM_SHAPE = re.compile(r"^[A-Za-z]+[:_][A-Za-z0-9]+$")


@functools.cache
def parser(schema_version: str = LATEST):  # noqa: ANN201 - OntologyParser (imported lazily: it is slow)
    import warnings

    from cellxgene_ontology_guide.ontology_parser import OntologyParser

    with warnings.catch_warnings():  # "schema version X is deprecated": we pin it on purpose, to match the file
        warnings.simplefilter("ignore", DeprecationWarning)
        return OntologyParser() if schema_version == LATEST else OntologyParser(schema_version=f"v{schema_version}")


def supported_schema_versions() -> list[str]:
    from cellxgene_ontology_guide.supported_versions import load_supported_versions

    return sorted(load_supported_versions())


def guide_version_for(schema_version: str | None) -> str:
    """The guide's ontology set for a file's ``uns['schema_version']`` (older files: the oldest set it ships)."""
    known = supported_schema_versions()
    if not schema_version:
        return LATEST
    if schema_version in known:
        return schema_version
    major = schema_version.split(".")[0]
    same_major = [v for v in known if v.split(".")[0] == major]
    return same_major[-1] if same_major else known[0]


@dataclass(frozen=True)
class TermRule:
    """What one obs column may hold (see schemas/*.yaml for the rules in use)."""

    ontologies: tuple[str, ...] = ()  # allowed ontology prefixes (imports such as AfPO count as their host)
    roots: tuple[str, ...] = ()  # a term must descend from one of these (the root itself excluded) ...
    roots_inclusive: tuple[str, ...] = ()  # ... or be one of these or descend from them
    terms: tuple[str, ...] = ()  # exact terms allowed besides the above (e.g. PATO:0000461 for normal)
    exclude: tuple[str, ...] = ()  # forbidden terms (descendants stay allowed)
    exclude_subtree: tuple[str, ...] = ()  # forbidden terms and all their descendants
    special: tuple[str, ...] = ()  # literal values allowed as they are ("unknown", "na")
    multi: bool = False  # several terms joined by " || ", sorted, without duplicates
    delimiters: tuple[str, ...] = (DELIMITER,)
    schema_version: str = LATEST

    @classmethod
    def from_statistics(cls, stats: dict, *, organism: str | None = None, schema_version: str = LATEST) -> TermRule:
        """The rule a schema declares, with its ``by_organism`` part resolved for ``organism``."""
        values = {k: v for k, v in stats.items() if k != "by_organism" and v is not None}
        by_organism = stats.get("by_organism") or {}
        if organism and organism in by_organism:
            values.update(by_organism[organism])
        elif by_organism:
            values.update(by_organism.get("other", {}))
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**kwargs, schema_version=schema_version)


@dataclass(frozen=True)
class TermVerdict:
    ok: bool
    reason: str = ""
    fix: str = ""
    suggestions: tuple[str, ...] = field(default_factory=tuple)


def split_terms(value: str, rule: TermRule) -> tuple[list[str], str | None]:
    """The terms of a (possibly multi-term) value and the delimiter it used."""
    for delimiter in rule.delimiters if rule.multi else ():
        if delimiter in value:
            return value.split(delimiter), delimiter
    if rule.multi and ("," in value or "|" in value):
        return [t.strip() for t in re.split(r"\s*(?:\|\||,|\|)\s*", value)], "?"
    return [value], None


@functools.cache
def check_term(value: str, rule: TermRule) -> TermVerdict:
    """Whether ``value`` satisfies ``rule``; if not, why, how to fix it, and near-miss terms."""
    if value in rule.special:
        return TermVerdict(True)
    terms, delimiter = split_terms(value, rule)
    if delimiter == "?":
        return TermVerdict(False, "several terms joined by the wrong delimiter",
                           f"join terms with {rule.delimiters[0]!r}, sorted: {rule.delimiters[0].join(sorted(terms))!r}")
    if len(terms) > 1:
        if len(set(terms)) != len(terms):
            return TermVerdict(False, "a term is repeated", f"list each term once: {DELIMITER.join(sorted(set(terms)))!r}")
        if terms != sorted(terms):
            return TermVerdict(False, "terms are not in ascending lexical order",
                               f"sort them: {delimiter.join(sorted(terms))!r}")
    for term in terms:
        verdict = _check_one(term, rule)
        if not verdict.ok:
            return verdict
    return TermVerdict(True)


def _check_one(term: str, rule: TermRule) -> TermVerdict:
    p = parser(rule.schema_version)
    if term in rule.terms:
        return TermVerdict(True)
    if not TERM_SHAPE.match(term):
        return TermVerdict(False, "not an ontology term id", f"use {_describe(rule)}", did_you_mean(term, rule))
    if not p.is_valid_term_id(term):
        return TermVerdict(False, f"no such term in the pinned ontologies (schema {rule.schema_version})",
                           f"use {_describe(rule)}", did_you_mean(term, rule))
    ontology = p._parse_ontology_name(term)  # noqa: SLF001 - the guide's own prefix resolution (imports included)
    if rule.ontologies and ontology not in rule.ontologies:
        return TermVerdict(False, f"a {ontology} term where {'/'.join(rule.ontologies)} is required",
                           f"use {_describe(rule)}")
    if p.is_term_deprecated(term):
        replacement = p.get_term_replacement(term)
        return TermVerdict(False, "obsolete term", f"use its replacement {replacement}" if replacement
                           else f"use a current term: {_describe(rule)}", (replacement,) if replacement else ())
    ancestors = set(p.get_term_ancestors(term))
    if term in rule.exclude or term in rule.exclude_subtree or ancestors & set(rule.exclude_subtree):
        return TermVerdict(False, f"{term} ({p.get_term_label(term)}) is not allowed here",
                           f"use a more specific term: {_describe(rule)}")
    if rule.roots or rule.roots_inclusive:
        under = ancestors & set(rule.roots) or (ancestors | {term}) & set(rule.roots_inclusive)
        if not under:
            return TermVerdict(False, f"{term} ({p.get_term_label(term)}) is not under the allowed roots",
                               f"use {_describe(rule)}")
    elif not rule.ontologies:  # only listed terms or special values are allowed
        return TermVerdict(False, "not one of the allowed values", f"use {_describe(rule)}")
    return TermVerdict(True)


@functools.cache
def _describe(rule: TermRule) -> str:
    """What the rule allows, in words, for a failure's fix (only then: naming the roots loads their ontologies)."""
    parts = []
    if rule.roots:
        parts.append("a descendant of " + " or ".join(f"{r} ({label(r, rule.schema_version)})" for r in rule.roots))
    if rule.roots_inclusive:
        parts.append(" or ".join(f"{r} ({label(r, rule.schema_version)}) or a descendant" for r in rule.roots_inclusive))
    if rule.ontologies and not (rule.roots or rule.roots_inclusive):
        parts.append("a current " + "/".join(rule.ontologies) + " term")
    parts += [f"{t} ({label(t, rule.schema_version)})" for t in rule.terms]
    parts += [repr(s) for s in rule.special]
    return ", or ".join(parts) or "nothing (this column must be absent)"


@functools.cache
def label(term: str, schema_version: str = LATEST) -> str:
    """The term's label; several terms give their labels joined by " || "; special values stay as they are."""
    if term in ("unknown", "na"):
        return term
    p = parser(schema_version)
    names = []
    for t in term.split(DELIMITER):
        if not p.is_valid_term_id(t):
            return ""
        names.append(p.get_term_label(t))
    return DELIMITER.join(names)


def did_you_mean(value: str, rule: TermRule, n: int = 3) -> tuple[str, ...]:
    """Near-miss terms: ids one typo away, or terms whose label matches the value (a label given for an id)."""
    p = parser(rule.schema_version)
    ontologies = rule.ontologies or tuple({r.split(":")[0] for r in (*rule.roots, *rule.roots_inclusive)})
    out: list[str] = []
    for name in ontologies:
        try:
            by_label = p.get_term_label_to_id_map(name)
        except ValueError:
            continue
        lowered = {k.lower(): v for k, v in by_label.items()}
        if value.lower() in lowered:
            out.append(f"{lowered[value.lower()]} ({value})")
            continue
        ids = list(by_label.values())
        close = difflib.get_close_matches(value, ids, n=n, cutoff=0.85) if TERM_SHAPE.match(value) else \
            [by_label[k] for k in difflib.get_close_matches(value, list(by_label), n=n, cutoff=0.75)]
        out += [f"{c} ({p.get_term_label(c)})" for c in close]
    return tuple(out[:n])
