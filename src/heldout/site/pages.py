"""HTML of the registry site: one shared layout, accessible tables, tiers in colour and text."""

from __future__ import annotations

import html
import json

e = html.escape
NAV = (("index.html", "Registry"), ("datasets.html", "Datasets"), ("models.html", "Models"),
       ("tiers.html", "Tier grid"), ("leaderboards.html", "Leaderboards"), ("lookup.html", "Lookup"))
CSS = """body{font-family:system-ui,-apple-system,sans-serif;margin:0;color:#1b1b1b;line-height:1.45}
header{background:#20344f;color:#fff;padding:.8rem 2rem}header a{color:#fff;margin-right:1.2rem}
main{padding:1rem 2rem;max-width:90rem}table{border-collapse:collapse;margin:.6rem 0}
th,td{border:1px solid #c9c9c9;padding:.3rem .6rem;text-align:left;vertical-align:top}
caption{text-align:left;font-weight:600;padding:.3rem 0}code,pre{background:#f4f4f4;padding:.1rem .3rem}
pre{padding:.6rem;overflow-x:auto}.tier{font-weight:700}.GREEN{background:#e8f5e9;color:#1b5e20}
.YELLOW{background:#fff8e1;color:#6d5400}.RED{background:#ffebee;color:#b71c1c}.GRAY{background:#f1f1f1;color:#424242}
.seen{color:#b71c1c}.notseen{color:#1b5e20}.inconclusive{color:#6d5400}label{font-weight:600}
input{font-size:1rem;padding:.3rem;width:22rem}a{color:#174ea6}"""


def page(title: str, body: str, *, depth: int = 0, scripts: tuple[str, ...] = ()) -> str:
    up = "../" * depth
    nav = "".join(f'<a href="{up}{href}">{e(label)}</a>' for href, label in NAV)
    tags = "".join(f'<script src="{up}{s}"></script>' for s in scripts)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width, initial-scale=1"><title>{e(title)} - heldout</title>'
            f'<link rel="stylesheet" href="{up}style.css"></head><body><header><nav aria-label="site">{nav}</nav>'
            f"</header><main><h1>{e(title)}</h1>{body}</main>{tags}</body></html>\n")


def table(caption: str, columns: list[str], rows: list[list[str]], *, raw: bool = False) -> str:
    """A table with a caption and column headers; cells are escaped unless ``raw`` (already HTML)."""
    head = "".join(f'<th scope="col">{e(c)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><caption>{e(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def tier_cell(tier: str, href: str) -> str:
    return f'<a class="tier {e(tier)}" href="{e(href)}">{e(tier)}</a>'


def pre(text: str) -> str:
    return f"<pre>{e(text)}</pre>"


LOOKUP_JS = r"""(function () {
  "use strict";
  // Mirrors heldout.identifiers.parse_identifier: the same normalisation as `heldout lookup`.
  var PATTERNS = [["geo_series", /^GSE\d+$/], ["geo_sample", /^GSM\d+$/], ["arrayexpress", /^E-[A-Z]{4}-\d+$/],
    ["sra_study", /^[SED]RP\d+$/], ["bioproject", /^PRJ[NED][A-Z]?\d+$/], ["gsa_human", /^HRA\d+$/],
    ["ega_study", /^EGA[SD]\d+$/], ["single_cell_portal", /^SCP\d+$/], ["pmid", /^\d{1,9}$/]];
  var UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  function parse(text) {
    var raw = text.trim().replace(/^"|"$/g, "").trim();
    var doi = raw.match(/^(?:doi:|https?:\/\/(?:dx\.)?doi\.org\/)?(10\.\d{4,9}\/\S+)$/i);
    if (doi) { return {kind: "doi", value: doi[1].toLowerCase().replace(/\.$/, "")}; }
    if (UUID.test(raw.toLowerCase())) { return {kind: "cellxgene_id", value: raw.toLowerCase()}; }
    var upper = raw.toUpperCase();
    var prefixes = ["GEO-", "AE-", "SRA-", "DISCO-", "PMID:", "PMID", "GEO:"];
    for (var i = 0; i < prefixes.length; i++) {
      if (upper.indexOf(prefixes[i]) === 0) { upper = upper.slice(prefixes[i].length).trim(); break; }
    }
    for (var j = 0; j < PATTERNS.length; j++) {
      if (PATTERNS[j][1].test(upper)) { return {kind: PATTERNS[j][0], value: upper}; }
    }
    return null;
  }
  function show(text) {
    var out = document.getElementById("result");
    var status = document.getElementById("status");
    out.textContent = "";
    var key = parse(text);
    if (!key) {
      status.textContent = "'" + text + "' is not an identifier heldout knows: give a GSE/GSM, E-MTAB, PMID, DOI or CELLxGENE id.";
      return;
    }
    var index = window.HELDOUT_LOOKUP;
    var found = index.keys[key.kind + ":" + key.value] || {};
    var label = key.kind === "pmid" ? "PMID:" + key.value : key.value;
    var seen = [];
    var table = document.createElement("table");
    var cap = table.createCaption();
    cap.textContent = label + " (" + key.kind + ") in the corpora of " + index.models.length + " registry models";
    var head = table.createTHead().insertRow();
    ["model", "corpus", "verdict", "why"].forEach(function (h) {
      var th = document.createElement("th"); th.scope = "col"; th.textContent = h; head.appendChild(th);
    });
    var body = table.createTBody();
    index.models.forEach(function (model) {
      var rows = found[model] || index.defaults[model][key.kind] || index.defaults[model]["other"];
      rows.forEach(function (r) {
        var tr = body.insertRow();
        [model, r[0], r[1], index.reasons[r[2]].replace(/\{key\}/g, label)].forEach(function (v, n) {
          var td = tr.insertCell(); td.textContent = v;
          if (n === 2) { td.className = v.replace(" ", ""); }
        });
        if (r[1] === "seen" && seen.indexOf(model) < 0) { seen.push(model); }
      });
    });
    out.appendChild(table);
    status.textContent = "Seen by: " + (seen.length ? seen.join(", ") : "no registry model") + ".";
  }
  window.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("lookup-form");
    var input = document.getElementById("key");
    form.addEventListener("submit", function (ev) { ev.preventDefault(); show(input.value); });
    var q = new URLSearchParams(window.location.search).get("q");
    if (q) { input.value = q; show(q); }
  });
})();
"""


def lookup_index_js(index: dict) -> str:
    return "window.HELDOUT_LOOKUP = " + json.dumps(index, separators=(",", ":"), sort_keys=True) + ";\n"
