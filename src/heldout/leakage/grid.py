"""The whole audit as a grid: every model x every dataset, each cell linking to its evidence.

Written in Markdown (inside the audit report) and as a self-contained HTML page
(no script, no external asset): tiers in colour **and** text, tables with
headers, and a legend of the evidence kinds and their rules.
"""

from __future__ import annotations

import html
import re

from heldout.leakage.tiers import Tier, TierResult

TIER_COLOURS = {Tier.GREEN: "#2e7d32", Tier.YELLOW: "#8a6d00", Tier.RED: "#b71c1c", Tier.GRAY: "#616161"}
TIER_BACKGROUNDS = {Tier.GREEN: "#e8f5e9", Tier.YELLOW: "#fff8e1", Tier.RED: "#ffebee", Tier.GRAY: "#f1f1f1"}
LEGEND = (
    ("cells", "a recorded manifest (or a Census scan) compared cell by cell: donors, exact and near content "
              "matches"),
    ("organism", "a corpus of other organisms cannot hold these cells (its Census query's organism, else the "
                 "model card's organisms)"),
    ("ids / accessions", "dataset or collection ids, DOIs and accessions listed on the card"),
    ("accession list", "a recorded published list (e.g. scFoundation's Supplementary Data): series and PMID both "
                       "found = seen; one key only = inconclusive; absent from a complete list = not seen"),
    ("filter", "the corpus's Census filter applied to the eval cells' own metadata: cells that surely fail are "
               "ruled out"),
    ("release table", "the eval dataset's DOI or CELLxGENE ids looked up in the Census release the corpus was "
                      "drawn from (the nearest LTS when the build is gone): present = possible exposure"),
    ("prose", "a description only: never enough for GREEN; the reason says what the authors would need to publish"),
)


def anchor(result: TierResult) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", f"{result.model}-x-{result.dataset}".lower())


def _axes(results: list[TierResult]) -> tuple[list[str], list[str], dict[tuple[str, str], TierResult]]:
    models = list(dict.fromkeys(r.model for r in results))
    datasets = list(dict.fromkeys(r.dataset for r in results))
    return models, datasets, {(r.model, r.dataset): r for r in results}


def markdown_grid(results: list[TierResult]) -> list[str]:
    models, datasets, cell = _axes(results)
    lines = ["| model \\ dataset | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets)]
    for m in models:
        row = [f"[{cell[(m, d)].tier.value}](#{anchor(cell[(m, d)])})" if (m, d) in cell else "" for d in datasets]
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    lines += ["", "Evidence kinds, strongest first:", ""] + [f"- **{k}**: {v}" for k, v in LEGEND]
    return lines


def html_page(results: list[TierResult], evidence_html: dict[str, str], title: str = "heldout leakage audit") -> str:
    """The grid and every pairing's evidence as one HTML page (``evidence_html``: anchor -> escaped HTML)."""
    models, datasets, cell = _axes(results)
    e = html.escape
    head = "".join(f'<th scope="col">{e(d)}</th>' for d in datasets)
    rows = []
    for m in models:
        cells = []
        for d in datasets:
            r = cell.get((m, d))
            if r is None:
                cells.append("<td></td>")
                continue
            style = f"background:{TIER_BACKGROUNDS[r.tier]};color:{TIER_COLOURS[r.tier]}"
            cells.append(f'<td style="{style}"><a href="#{anchor(r)}" style="color:inherit">'
                         f'<strong>{r.tier.value}</strong></a></td>')
        rows.append(f'<tr><th scope="row">{e(m)}</th>{"".join(cells)}</tr>')
    legend = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in LEGEND)
    sections = []
    for r in results:
        sections.append(f'<section id="{anchor(r)}"><h3>{e(r.model)} &times; {e(r.dataset)}: '
                        f'<span style="color:{TIER_COLOURS[r.tier]}">{r.tier.value}</span></h3>'
                        f"<p>{e(r.reason)}</p>{evidence_html.get(anchor(r), '')}</section>")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
            "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:80rem}"
            "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}"
            "dt{font-weight:bold}section{border-top:1px solid #ddd;margin-top:1rem}</style></head><body>"
            f"<h1>{e(title)}</h1><p>Every registry model &times; every dataset. Each tier links to its evidence; "
            "colour repeats the tier's name.</p>"
            f'<table><caption>Leakage tiers</caption><thead><tr><th scope="col">model \\ dataset</th>{head}</tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table>"
            f"<h2>Evidence kinds</h2><dl>{legend}</dl><h2>Evidence</h2>{''.join(sections)}</body></html>\n")
