"""Gather a registry's releases, cards, tiers, leaderboards and lookup index, and write the site."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from heldout.errors import HeldoutError, ReleaseError
from heldout.identifiers import Identifier, IdKind
from heldout.site import pages
from heldout.site.pages import e, page, table, tier_cell

SENTINELS = {  # a key of each kind that no list holds: the verdict a list gives to keys it does not hold
    IdKind.geo_series: "GSE0", IdKind.geo_sample: "GSM0", IdKind.arrayexpress: "E-XXXX-0",
    IdKind.sra_study: "SRP0", IdKind.bioproject: "PRJNA0", IdKind.gsa_human: "HRA0", IdKind.ega_study: "EGAS0",
    IdKind.single_cell_portal: "SCP0", IdKind.pmid: "0", IdKind.doi: "10.0000/heldout-none",
    IdKind.cellxgene_id: "00000000-0000-0000-0000-000000000000", IdKind.other: "none"}


@dataclass(frozen=True)
class Site:
    root: Path
    pages: tuple[str, ...]
    lookup_keys: int
    pairings: int


def build_site(out: str | Path, *, registry: str | Path | None = None, results: Path | None = None,
               mirror_root: str | Path | None = None) -> Site:
    """Write the site of ``registry`` (its latest release, and every release's datasets) to ``out``."""
    from heldout.leakage.audit import audit_project
    from heldout.pull import materialize_corpora, read_index, release_models

    out = Path(out)
    index = read_index(registry)
    if not index.releases:
        msg = f"The registry {registry or '.'} has no release to publish."
        raise ReleaseError(msg, hint="Make one with `heldout release v1`.")
    latest = index.resolve("latest")
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    written = []

    def write(rel: str, text: str) -> None:
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_text(text, encoding="utf-8")
        written.append(rel)

    write("style.css", pages.CSS)
    write("lookup.js", pages.LOOKUP_JS)
    cards = release_models(latest, registry)
    results_audit = audit_project(release=latest, registry=registry, mirror_root=mirror_root)
    datasets_html, dataset_pages = _datasets(registry, index, write)
    write("datasets.html", page("Datasets", datasets_html))
    write("models.html", page("Models", _models(cards, write)))
    write("tiers.html", page(f"Tier grid (release {latest})", _tiers(results_audit)))
    write("leaderboards.html", page("Leaderboards", _leaderboards(results, registry, mirror_root, staging, written)))
    root = materialize_corpora(latest, registry)
    index_data = lookup_index(cards, root, dataset_cards=dataset_pages)
    write("lookup-index.js", pages.lookup_index_js(index_data))
    write("lookup.html", page("Lookup", _lookup_body(len(index_data["keys"])),
                              scripts=("lookup-index.js", "lookup.js")))
    write("index.html", page("heldout registry", _home(index, latest, dataset_pages, cards, results_audit)))
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return Site(root=out, pages=tuple(written), lookup_keys=len(index_data["keys"]), pairings=len(results_audit))


def _datasets(registry: str | Path | None, index: object, write) -> tuple[str, dict]:  # noqa: ANN001
    from heldout.croissant import FOLDER
    from heldout.pull import TAG_PREFIX, _read_text, _registry, read_manifest

    reg = _registry(registry)
    rows, by_name = [], {}
    for version, entry in index.releases.items():  # type: ignore[attr-defined]
        manifest = read_manifest(version, registry)
        aliases = ", ".join(a for a, v in index.aliases.items() if v == version)  # type: ignore[attr-defined]
        for name, ds in manifest.datasets.items():
            by_name.setdefault(name, []).append((version, entry, ds, aliases))
    for name, versions in sorted(by_name.items()):
        sections = []
        for version, entry, ds, aliases in versions:
            rev = f"{TAG_PREFIX}{version}"
            card = _read_text(reg, f"registry/datasets/{name}.yaml", rev=rev)
            croissant = ""
            try:
                text = _read_text(reg, f"registry/releases/{FOLDER}/{version}/{name}.json", rev=rev)
                write(f"croissant/{version}/{name}.json", text)
                croissant = f'<p>Croissant 1.1: <a href="../croissant/{e(version)}/{e(name)}.json">{e(name)}.json</a></p>'
            except HeldoutError:
                croissant = "<p>No Croissant file (this release predates them).</p>"
            status = f"RETRACTED: {entry.retraction.reason}" if entry.retracted and entry.retraction else "ok"
            artifacts = table(f"{name}@{version}: artifacts", ["artifact", "path", "size", "sha256"],
                              [[k, a.path, f"{a.size:,} B", a.sha256] for k, a in ds.artifacts.items()])
            sections.append(
                f'<section id="{e(version)}"><h2>{e(name)}@{e(version)} <small>({e(aliases or "no alias")}; '
                f"{e(status)})</small></h2><p>{ds.n_cells:,} cells, {ds.n_donors:,} donors, {ds.n_genes:,} genes; "
                f"{e(ds.census_source)} {e(ds.census_version)}; {e(ds.organism)}.</p>"
                f"<p>Pull: <code>heldout pull {e(name)}@{e(version)} --registry {e(reg)}</code></p>{croissant}"
                f"{artifacts}<h3>Card</h3>{pages.pre(card)}</section>")
            rows.append([f'<a href="datasets/{e(name)}.html#{e(version)}">{e(name)}</a>', e(version), e(aliases),
                         f"{ds.n_cells:,}", f"{ds.n_donors:,}", e(f"{ds.census_source} {ds.census_version}"),
                         e(status)])
        write(f"datasets/{name}.html", page(name, "".join(sections), depth=1))
    body = table("Released datasets x versions", ["dataset", "version", "aliases", "cells", "donors", "source",
                                                  "status"], rows, raw=True)
    return body, by_name


def _models(cards: list, write) -> str:  # noqa: ANN001
    rows = []
    for card in cards:
        corpora = table(f"{card.name}: corpora", ["role", "corpus", "documented as", "description", "list", "sources"],
                        [[c.role.value, c.name, c.documented_as.value, " ".join(c.description.split()),
                          c.accession_list or c.release_table or "", "; ".join(s.ref for s in c.sources)]
                         for c in card.corpora])
        write(f"models/{card.name}.html", page(card.display_name, f"<p>{e(' '.join(card.notes.split()))}</p>"
                                               f"<p>Organisms: {e(', '.join(o.value for o in card.organisms))}; "
                                               f"variants: {e(', '.join(card.variants))}.</p>{corpora}", depth=1))
        rows.append([f'<a href="models/{e(card.name)}.html">{e(card.display_name)}</a>', e(card.name),
                     e(", ".join(o.value for o in card.organisms)), str(len(card.corpora))])
    return table("Model cards", ["model", "card", "organisms", "corpora"], rows, raw=True)


def _tiers(results: list) -> str:
    from heldout.leakage.audit import evidence_lines
    from heldout.leakage.grid import LEGEND, anchor

    models = list(dict.fromkeys(r.model for r in results))
    datasets = list(dict.fromkeys(r.dataset for r in results))
    cell = {(r.model, r.dataset): r for r in results}
    rows = [[f'<th scope="row">{e(m)}</th>'] + [tier_cell(cell[(m, d)].tier.value, f"#{anchor(cell[(m, d)])}")
                                                 if (m, d) in cell else "" for d in datasets] for m in models]
    head = "".join(f'<th scope="col">{e(d)}</th>' for d in datasets)
    body = "".join("<tr>" + row[0] + "".join(f"<td>{c}</td>" for c in row[1:]) + "</tr>" for row in rows)
    grid = (f'<table id="grid"><caption>Every registry model x every released dataset: the tier links to its '
            f'evidence</caption><thead><tr><th scope="col">model \\ dataset</th>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")
    legend = "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in LEGEND) + "</dl>"
    sections = "".join(
        f'<section id="{anchor(r)}"><h3>{e(r.model)} x {e(r.dataset)}: <span class="tier {r.tier.value}">'
        f"{r.tier.value}</span></h3><p>{e(r.reason)}</p><ul>"
        + "".join(f"<li>{e(line.lstrip('- ').strip())}</li>" for ev in r.evidence for line in evidence_lines(ev))
        + "</ul></section>" for r in results)
    return f"{grid}<h2>Evidence kinds</h2>{legend}<h2>Evidence</h2>{sections}"


def _leaderboards(results: Path | None, registry: str | Path | None, mirror_root: str | Path | None,
                  staging: Path, written: list[str]) -> str:
    if results is None:
        return "<p>No evaluation results were given to this build (<code>heldout site build OUT --results DIR</code>).</p>"
    from heldout.evaluation.report import html_report, read_records, summary_rows
    from heldout.evaluation.run import RESULTS_TABLE, recheck_tiers

    from heldout.project import Project

    records = read_records(Path(results) / RESULTS_TABLE)
    local = Path(str(registry)) if registry is not None and (Path(str(registry)) / "registry").is_dir() else None
    tiers = recheck_tiers(records, registry=registry, mirror_root=mirror_root,
                          project=Project(local.resolve()) if local else None)
    html_report(records, tiers, staging / "leaderboards-report.html")
    written.append("leaderboards-report.html")
    rows = [list(r) for r in summary_rows(records, tiers)]
    return (table("Headline metric per task: each model beside its controls and baselines, with its tier",
                  ["task", "model", "tier", "metric", "score", "scaled"], rows)
            + '<p>Plots, every metric and every seed: <a href="leaderboards-report.html">the full report</a>.</p>')


def lookup_index(cards: list, root: Path, *, dataset_cards: dict | None = None) -> dict:
    """Every identifier the registry's lists and cards hold, with each model's verdict where it differs from
    the verdict that model gives any other key of the same kind (``defaults``)."""
    from heldout.corpora.lists import ListCache
    from heldout.identifiers import parse_identifier, parse_identifiers
    from heldout.lookup import Lookup

    lookup = Lookup.__new__(Lookup)
    lookup.cards, lookup.lists = cards, ListCache(root)
    keys: set[Identifier] = set()
    for card in cards:
        for corpus in card.corpora:
            keys |= {k for a in corpus.accessions for k in parse_identifiers(a)}
            for path, sha in ((corpus.accession_list, corpus.accession_list_sha256),
                              (corpus.release_table, corpus.release_table_sha256)):
                if not path:
                    continue
                loaded = lookup.lists.get(path, sha)
                if loaded.accessions is not None:
                    keys |= loaded.accessions.keys()
                if loaded.release is not None:
                    keys |= loaded.release.keys()
    keys = {k for k in keys if k.kind is not IdKind.other}

    def rows(key: Identifier) -> dict[str, list]:
        text = str(key)
        return {m.model: [[c.corpus, c.verdict, c.reason.replace(text, "{key}")] for c in m.corpora]
                for m in lookup.key(key)}

    defaults: dict[str, dict[str, list]] = {c.name: {} for c in cards}
    for kind, value in SENTINELS.items():
        for model, model_rows in rows(parse_identifier(value) if kind is not IdKind.other
                                      else Identifier(IdKind.other, value)).items():
            defaults[model][kind.value] = model_rows
    reasons: dict[str, int] = {}  # every distinct reason once; rows name it by number

    def compact(model_rows: list) -> list:
        return [[corpus, verdict, reasons.setdefault(reason, len(reasons))] for corpus, verdict, reason in model_rows]

    out: dict[str, dict] = {}
    for key in sorted(keys):
        differs = {m: compact(r) for m, r in rows(key).items() if r != defaults[m].get(key.kind.value)}
        if differs:
            out[f"{key.kind.value}:{key.value}"] = differs
    defaults = {m: {k: compact(r) for k, r in by_kind.items()} for m, by_kind in defaults.items()}
    return {"models": [c.name for c in cards], "defaults": defaults, "keys": out, "reasons": list(reasons)}


def _lookup_body(n_keys: int) -> str:
    return ('<p>Has a registry model seen a dataset? Give its GEO series or sample, ArrayExpress id, PMID, DOI or '
            "CELLxGENE dataset/collection id. The lookup runs in your browser on an index of "
            f"{n_keys:,} identifiers that the site build wrote (the same rules as <code>heldout lookup</code>).</p>"
            '<form id="lookup-form" role="search"><label for="key">Identifier</label> '
            '<input id="key" name="q" placeholder="GSE133344" autocomplete="off"> '
            '<button type="submit">Look up</button></form><p id="status" role="status" aria-live="polite"></p>'
            '<div id="result"></div>')


def _home(index: object, latest: str, datasets: dict, cards: list, results: list) -> str:
    counts = {t: sum(r.tier.value == t for r in results) for t in ("GREEN", "YELLOW", "RED", "GRAY")}
    return (f"<p>Latest release <strong>{e(latest)}</strong>; {len(index.releases)} release(s), "  # type: ignore[attr-defined]
            f"{len(datasets)} dataset(s), {len(cards)} model card(s). Tiers of the latest release: "
            + ", ".join(f'<span class="tier {t}">{t}</span> {n}' for t, n in counts.items()) + ".</p>"
            "<ul><li><a href=\"datasets.html\">Datasets</a>: every version, its card, counts, splits, checksums, "
            "a pull command and its Croissant file</li><li><a href=\"models.html\">Models</a>: each card's corpora and "
            "sources</li><li><a href=\"tiers.html\">Tier grid</a>: every model x dataset, each linking to its "
            "evidence</li><li><a href=\"leaderboards.html\">Leaderboards</a></li><li><a href=\"lookup.html\">Lookup"
            "</a>: which models saw an identifier</li></ul>"
            "<p>Built by <code>heldout site build</code>: plain files, no server and no external asset.</p>")
