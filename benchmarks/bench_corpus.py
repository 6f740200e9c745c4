"""Recorded corpus manifests: recording throughput, and the audit join at 1M-10M cells vs a live scan.

    .venv/bin/python benchmarks/bench_corpus.py [--replicates 100] [--sizes 1 3 10]

Every step runs in a fresh process (``_measure.run_step``) and reports its own wall time and peak RSS.

1. Recording: ``heldout corpus record`` of every mouse cell of a mirror with N SYNTHETIC thinned copies
   of the real 10k mouse brain cells (N=100: 1,010,000 cells), and of Baron human (100,674 cells: the
   2,142 real ones and 46 SYNTHETIC thinned copies, ~1,550 genes each: many non-zeros per cell).
   Reported in cells/s and non-zeros/s, beside the signature kernel alone on the same blocks and the
   anchor: reading the same X out of TileDB-SOMA.
2. Live scan (``--rescan``): the same 1.01M-cell corpus streamed from the SOMA store and joined.
3. Join against 100k eval cells, pinned to one core like the live scan it is compared with (steps 2-3).
   Realistic eval: 99,000 distinct Baron human cells plus 1,000 cells planted from the corpus. Stress eval:
   100,000 corpus cells, each with ~100 thinned synthetic siblings in that corpus (the replicated mirror),
   the worst case for near-duplicate candidates. On the recorded 1.01M manifest both; then on SYNTHETIC
   manifests of 3M and 10M cells: the recorded rows replicated with every hash salted per copy (distinct,
   unrelated content of the same size) except the planted cells' own rows. Peak memory should not grow
   with the manifest. Each synthetic join runs ``--join-repeats`` times in fresh processes, interleaved across
   sizes; the median is reported with every run's time (this machine's speed varies by up to 2x in minutes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics

from _measure import run_step
from bench_curation import WORK

RECORD = """
import shutil, time, numpy as np
from pathlib import Path
from heldout.census import resolve_census
from heldout.corpora.record import census_plan, execute
root = Path({root!r})
shutil.rmtree(root / "corpora" / "bench" / {corpus!r}, ignore_errors=True)  # record anew (finished parts are kept)
resolved = resolve_census("2025-11-08", source="mirror", mirror_root={mirror!r})
plan = census_plan(root=root, model="bench", corpus={corpus!r}, role="pretraining", definition_sha256="0" * 64,
                   resolved=resolved, organism={organism!r}, obs_filter="is_primary_data == True",
                   partition_cells=250_000)
t = time.perf_counter()
m = execute(plan, workers=1)
s = time.perf_counter() - t
import tiledbsoma as soma
with soma.open(resolved.uri) as c:
    nnz = int(c["census_data"][{organism!r}].ms["RNA"].X["raw"].nnz)
RESULT = {{"step": "record " + {corpus!r}, "cells": m.n_cells, "nnz": nnz, "seconds": round(s, 2),
          "cells_per_s": round(m.n_cells / s), "nnz_per_s": round(nnz / s), "partitions": len(plan.specs)}}
"""

KERNEL = """
import time, numpy as np, tiledbsoma as soma
from heldout.census import resolve_census, streaming_context
from heldout.leakage.fingerprint import gene_keys, signatures
resolved = resolve_census("2025-11-08", source="mirror", mirror_root={mirror!r})
exp = soma.Experiment.open(resolved.uri + "/census_data/{organism}", context=streaming_context())
keys = gene_keys(exp.ms["RNA"].var.read(column_names=["feature_id"]).concat().to_pandas()["feature_id"])
t = time.perf_counter()
blocks = [c for c, _ in exp.axis_query("RNA").X("raw").blockwise(axis=0, size=50_000).scipy()]
read_s = time.perf_counter() - t  # the anchor: reading the same X out of TileDB-SOMA, nothing else
signatures(blocks[0][:10], keys)  # numba cache load
t = time.perf_counter()
for b in blocks:
    signatures(b, keys)
s = time.perf_counter() - t
nnz = sum(b.nnz for b in blocks)
RESULT = {{"step": "signature kernel alone ({organism})", "nnz": nnz, "seconds": round(s, 3),
          "nnz_per_s": round(nnz / s), "read_x_seconds": round(read_s, 2), "read_x_nnz_per_s": round(nnz / read_s)}}
"""

PREPARE = """
import numpy as np, pyarrow.parquet as pq
from pathlib import Path
from heldout.leakage.fingerprint import Signatures
def load(folder):
    return Signatures.concat([Signatures.from_table(pq.read_table(p))
                              for p in sorted((Path(folder) / "data" / "cells").rglob("*.parquet"))])
rng = np.random.default_rng(0)
mouse, baron = load({recorded!r}), load({baron!r})
planted = mouse.take(rng.choice(len(mouse), 1_000, replace=False))
sets = {{"realistic": Signatures.concat([baron.take(rng.choice(len(baron), 99_000, replace=False)), planted]),
        "stress": mouse.take(rng.choice(len(mouse), 100_000, replace=False))}}
for name, sig in sets.items():
    np.savez({work!r} + f"/eval-{{name}}.npz", exact=sig.exact, sketch=sig.sketch, n_genes=sig.n_genes,
             n_counts=sig.n_counts)
np.save({work!r} + "/planted.npy", planted.exact[:, 0])
RESULT = {{"step": "prepare eval sets", "realistic": "99,000 distinct Baron human cells + 1,000 planted corpus cells",
          "stress": "100,000 corpus cells, each with ~100 thinned synthetic siblings in the corpus"}}
"""

EVAL = """
import os, time, numpy as np
os.sched_setaffinity(0, {{sorted(os.sched_getaffinity(0))[0]}})  # the join on one core, as its target says
from pathlib import Path
from heldout.leakage.fingerprint import Signatures
from heldout.leakage.matching import EvalIndex, match_corpus
from heldout.corpora.manifest import CorpusReader
z = np.load({work!r} + "/eval-{kind}.npz")
index = EvalIndex(Signatures(z["exact"], z["sketch"], z["n_genes"], z["n_counts"]))
"""


def synthesize(recorded: str, out: str, copies: int, work: str) -> str:
    """``copies`` x the recorded manifest, every hash salted per copy (distinct, unrelated content of the same
    size) except the planted eval cells' own rows: a corpus holding 1,000 eval cells and nothing related to the
    rest. One file per dataset holding all its copies (~100k rows, an average Census dataset)."""
    return f"""
import numpy as np, pyarrow as pa, pyarrow.parquet as pq, shutil, time, yaml
from pathlib import Path
from heldout._files import sha256_file, write_yaml_atomic
from heldout.corpora.record import ROW_GROUP
from heldout.leakage.fingerprint import HASH_COLUMNS, PROBE_WIDTH, SKETCH_BUCKETS, matrix, write_options
rec, out = Path({recorded!r}), Path({out!r})
planted = np.sort(np.load({work!r} + "/planted.npy"))
shutil.rmtree(out, ignore_errors=True)
shutil.copytree(rec, out, ignore=shutil.ignore_patterns("cells", ".verified.json"))
manifest = yaml.safe_load((rec / "manifest.yaml").read_text())
files = [f for f in manifest["files"] if not f.get("dataset_id")]
def salt(values, k):
    with np.errstate(over="ignore"):
        z = values ^ np.uint64(0x9E3779B97F4A7C15 * (k + 1) % 2**64)
        z = (z ^ (z >> np.uint64(31))) * np.uint64(0xBF58476D1CE4E5B9)
        return z ^ (z >> np.uint64(29))
t = time.perf_counter()
by_dataset = {{}}
for f in [f for f in manifest["files"] if f.get("dataset_id")]:
    by_dataset.setdefault(f["dataset_id"], []).append(pq.read_table(rec / f["path"]))
for dataset, tables in by_dataset.items():
    table = pa.concat_tables(tables)
    lane0 = matrix(table.column("probe"), PROBE_WIDTH)[:, 0]
    keep = np.isin(lane0, planted)  # copy 0 keeps the planted cells as they are
    parts = []
    for k in range({copies}):
        part = table
        for name in HASH_COLUMNS:
            width = {{"probe": PROBE_WIDTH, "exact_lane1": 1, "sketch": SKETCH_BUCKETS}}[name]
            m = matrix(table.column(name), width)
            salted = salt(m, k + 1)
            if k == 0:
                salted[keep] = m[keep]
            arr = (pa.array(salted[:, 0]) if name == "exact_lane1" else
                   pa.FixedSizeBinaryArray.from_buffers(pa.binary(8 * width), len(m), [None, pa.py_buffer(salted.tobytes())]))
            part = part.set_column(part.schema.get_field_index(name), name, arr)
        parts.append(part)
    merged = pa.concat_tables(parts)
    path = out / "data" / "cells" / dataset / "part-all.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(merged, path, row_group_size=ROW_GROUP, **write_options(merged.column_names))
    files.append({{"path": str(path.relative_to(out)), "sha256": sha256_file(path), "size": path.stat().st_size,
                  "dataset_id": dataset, "n_cells": merged.num_rows}})
manifest["files"], manifest["n_cells"] = files, manifest["n_cells"] * {copies}
write_yaml_atomic(out / "manifest.yaml", manifest)
RESULT = {{"step": "synthesize", "cells": manifest["n_cells"], "files": len(files) - 2,
          "seconds": round(time.perf_counter() - t, 1)}}
"""


def join(label: str, manifest: str, *, verify_first: bool) -> str:
    return f"""
reader_t = time.perf_counter()
reader = CorpusReader(Path({manifest!r}) / "manifest.yaml")  # sha256 of every file (cached afterwards)
verify_s = time.perf_counter() - reader_t
if {verify_first!r}:
    reader = CorpusReader(Path({manifest!r}) / "manifest.yaml")
t = time.perf_counter()
hits = match_corpus(index, reader.batches())
s = time.perf_counter() - t
RESULT = {{"step": {label!r}, "cores": len(os.sched_getaffinity(0)), "corpus_cells": hits.corpus_cells, "eval_cells": index.n,
          "found_exact": int(hits.exact.sum()), "found_near": int(hits.near.sum()), "candidates": hits.candidates,
          "seconds": round(s, 2), "fingerprints_per_s": round(hits.corpus_cells / s),
          "first_verify_seconds": round(verify_s, 2)}}
"""


LIVE = """
from heldout.cards.model import Corpus
from heldout.leakage.content import LiveCensusView
corpus = Corpus.model_validate({{"role": "pretraining", "name": "x", "documented_as": "census_filter",
    "census": {{"source": "mirror", "version": "2025-11-08", "organism": "mus_musculus",
               "obs_value_filter": "is_primary_data == True"}}, "sources": [{{"kind": "paper", "ref": "x"}}]}})
t = time.perf_counter()
view = LiveCensusView(corpus, "is_primary_data == True", {mirror!r})
hits = match_corpus(index, view.batches())
s = time.perf_counter() - t
RESULT = {{"step": "live scan (--rescan) of the same corpus", "corpus_cells": hits.corpus_cells,
          "eval_cells": index.n, "found_exact": int(hits.exact.sum()), "found_near": int(hits.near.sum()),
          "seconds": round(s, 2), "fingerprints_per_s": round(hits.corpus_cells / s)}}
"""


def mirror(replicates: int, source: str) -> str:
    root = WORK / f"mirror-{source}-x{replicates}"
    if not (root / "release.json").exists():
        from heldout.mirror.build import build_mirror

        shutil.rmtree(root, ignore_errors=True)
        build_mirror(root, replicate=replicates, write_h5ads=False, sources=[source])
    return str(root)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicates", type=int, default=100)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 3, 10], help="synthetic manifest sizes (x 1M)")
    parser.add_argument("--join-repeats", type=int, default=5,
                        help="fresh-process joins per synthetic manifest, interleaved across sizes (median reported)")
    args = parser.parse_args()
    mouse = mirror(args.replicates, "mouse-brain-10k")
    human = mirror(46, "baron2016-pancreas-human")
    rows = []
    for mirror_root, organism, corpus in ((mouse, "mus_musculus", "mouse"), (human, "homo_sapiens", "baron")):
        root = str(WORK / "corpora-root")
        rows.append(run_step(RECORD.format(root=root, mirror=mirror_root, corpus=corpus, organism=organism)))
        rows.append(run_step(KERNEL.format(mirror=mirror_root, organism=organism)))
    recorded = str(WORK / "corpora-root" / "corpora" / "bench" / "mouse")
    baron = str(WORK / "corpora-root" / "corpora" / "bench" / "baron")
    rows.append(run_step(PREPARE.format(recorded=recorded, baron=baron, work=str(WORK))))
    for kind in ("realistic", "stress"):  # the 1.01M recorded corpus: every planted cell has ~100 siblings in it
        setup = EVAL.format(work=str(WORK), kind=kind)
        live = run_step(setup + LIVE.format(mirror=mouse))
        rows.append({**live, "step": f"{live['step']} ({kind} eval)"})
        rows.append(run_step(setup + join(f"join: recorded manifest ({kind} eval)", recorded, verify_first=True)))
    synthetic = {}
    for size in args.sizes:  # synthetic manifests: the planted cells and nothing related to the eval set
        out = str(WORK / f"manifest-{size}x")
        copies = max(1, round(size * 1_000_000 / 1_010_000))
        rows.append(run_step(synthesize(recorded, out, copies, str(WORK))))
        synthetic[copies] = out
    joins: dict[int, list[dict]] = {copies: [] for copies in synthetic}
    for repeat in range(args.join_repeats):  # interleaved, so a noisy minute does not land on one size only
        for copies, out in synthetic.items():
            label = f"join: synthetic {copies}x manifest (realistic eval)"
            joins[copies].append(run_step(EVAL.format(work=str(WORK), kind="realistic")
                                          + join(label, out, verify_first=repeat == 0)))
    for copies, runs in joins.items():
        seconds = sorted(r["seconds"] for r in runs)
        median = statistics.median(seconds)
        rows.append({**runs[0], "seconds": median, "fingerprints_per_s": round(runs[0]["corpus_cells"] / median),
                     "runs_seconds": seconds, "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
                     "fingerprints_per_s_range": [round(runs[0]["corpus_cells"] / s) for s in (seconds[-1], seconds[0])]})
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
