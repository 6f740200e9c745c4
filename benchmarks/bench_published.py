"""Published-model tiers (issue 26): the audit of every registry model x every bundled dataset, and lookup latency.

    .venv/bin/python benchmarks/bench_published.py [--repeats 5]

Every step runs in a fresh process (``_measure.run_step``). A project in ``benchmarks/work/published`` holds
the registry's cards and corpus lists, with every bundled dataset curated once from the default mini-Census.

1. Audit: ``audit_project`` over every registry model (12) x every curated dataset (7): organism, filter,
   release-table and accession-list evidence, the lists loaded and verified by sha256. Anchor, in the same
   process: loading the seven datasets' eval data alone (the fixed cost any audit pays).
2. Lookup: ``heldout lookup GSE133344`` as a user runs it (a fresh CLI process, wall time from outside),
   beside the anchor of ``heldout --version`` (the CLI's start-up floor) in the same minutes; and the
   library in a warm process: the first call (cards and lists loaded and verified), then the median of 20
   lookups with them loaded (what ``heldout site build`` does for every identifier of the index).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _measure import run_step
from bench_curation import WORK

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATASETS = ("glioma-tirosh2016", "pbmc-blood", "mouse-brain-10k", "baron-pancreas-human", "baron-pancreas-mouse",
            "norman-2019", "mcfaline-figueroa-2023")

SETUP = """
from pathlib import Path
from heldout.curation import curate
from heldout.project import Project
project = Project(Path({root!r}))
for name in {datasets!r}:
    curate(name, project=project, mirror_root={mirror!r}, progress=False)
RESULT = {{}}
"""

AUDIT = """
import time
from pathlib import Path
from heldout.project import Project
from heldout.leakage.audit import audit_project, eval_from_curated
project = Project(Path({root!r}))
t = time.perf_counter()
evals = [eval_from_curated(project, n) for n in {datasets!r}]
for e in evals:
    e.obs  # the Census metadata the filter rule reads
anchor = time.perf_counter() - t
t = time.perf_counter()
results = audit_project(project=project)
wall = time.perf_counter() - t
RESULT = {{"audit_s": round(wall, 3), "anchor_load_eval_s": round(anchor, 3), "pairings": len(results),
          "tiers": {{k: sum(r.tier.value == k for r in results) for k in ("GREEN", "YELLOW", "RED", "GRAY")}}}}
"""

WARM_LOOKUP = """
import statistics, time
from pathlib import Path
from heldout.project import Project
from heldout.lookup import Lookup, lookup, parse_key
project = Project(Path({root!r}))
t = time.perf_counter(); lookup("GSE133344", project=project); first = time.perf_counter() - t
registry = Lookup(project)  # cards and lists loaded once, as the site build does
times = []
for key in ["GSE133344", "GSE84133", "31395745", "10.1126/science.abf1970"] * 5:
    t = time.perf_counter(); registry.key(parse_key(key)); times.append(time.perf_counter() - t)
RESULT = {{"first_call_s": round(first, 4), "warm_median_s": round(statistics.median(times), 4)}}
"""


def bundled_mirror() -> Path:
    """The default mini-Census without h5ad sources, built once under benchmarks/work."""
    mirror = WORK / "mirror-published"
    if not (mirror / "release.json").exists():
        subprocess.run([str(BIN / "heldout"), "mirror", "build", "--out", str(mirror), "--no-h5ads"], check=True,
                       capture_output=True)
    return mirror


def fresh_project(root: Path) -> Path:
    """A project folder holding the repository's cards, schemas, maps, corpus lists and vendored sources."""
    shutil.rmtree(root, ignore_errors=True)
    for folder in ("registry", "schemas", "curation", "corpora/lists", "corpora/provenance", "sources/perturbench"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("releases"))
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    return root


def project_dir(mirror: Path) -> Path:
    root = WORK / "published"
    if not (root / "data" / "curated" / f"{DATASETS[-1]}.fingerprints.parquet").exists():
        run_step(SETUP.format(root=str(fresh_project(root)), datasets=DATASETS, mirror=str(mirror)))
    return root


def timed(cmd: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, capture_output=True, check=True)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    root = project_dir(bundled_mirror())
    audits = [run_step(AUDIT.format(root=str(root), datasets=DATASETS)) for _ in range(args.repeats)]
    print(f"audit, every model card x {len(DATASETS)} datasets (fresh process each):")
    for a in audits:
        print(f"  audit {a['audit_s']:.2f} s, anchor (load eval data) {a['anchor_load_eval_s']:.2f} s, "
              f"peak {a['peak_rss_mib']:.0f} MiB, {a['pairings']} pairings {a['tiers']}")
    print(f"  median audit {statistics.median(a['audit_s'] for a in audits):.2f} s, median anchor "
          f"{statistics.median(a['anchor_load_eval_s'] for a in audits):.2f} s")
    cli, floor = [], []
    for _ in range(args.repeats):  # alternating, so both see the same minutes
        floor.append(timed([str(BIN / "heldout"), "--version"], root))
        cli.append(timed([str(BIN / "heldout"), "lookup", "GSE133344"], root))
    print(f"heldout lookup GSE133344 (fresh CLI process): median {statistics.median(cli):.2f} s "
          f"({', '.join(f'{t:.2f}' for t in cli)}); anchor `heldout --version`: median "
          f"{statistics.median(floor):.2f} s ({', '.join(f'{t:.2f}' for t in floor)})")
    warm = run_step(WARM_LOOKUP.format(root=str(root)))
    print(f"lookup in-process: first call {warm['first_call_s'] * 1000:.0f} ms (cards and lists loaded, verified), "
          f"then median {warm['warm_median_s'] * 1000:.2f} ms per key with them loaded")


if __name__ == "__main__":
    main()
