"""The metric engine: cell-eval2, called twice per entry, aggregated per test subgroup.

heldout writes no perturbation metric itself. Every number comes from Arc Institute's cell-eval2:

* **raw metrics**: the ``cell-eval-0.7.6`` preset (upstream cell-eval's metric set and names, the
  pdex Wilcoxon DE backend, per-perturbation Benjamini-Hochberg), with cell-eval 0.8.2's zero-mean fold
  changes (``de.clip_value``: 0 when a gene is absent from both groups, +-1023 where it is +-inf). It reproduces cell-eval 0.8.2 (``tests/test_perturbation_eval.py``
  checks it on real cells; ``benchmarks/bench_perturbation.py`` at ~300k cells);
* **the vcc2026 score**: the 2026 Virtual Cell Challenge's metric set and conventions (v2 names,
  the real controls as reference), each scored member put on cell-eval2's replicate scale (0 = the
  mean baseline, 1 = the technical replicate) by cell-eval2's own ``score_one`` and scoring policy,
  and averaged. The challenge scores counts; heldout feeds both sides as log1p(CP10k), so models
  that predict either scale are scored alike.

Aggregates are taken per subgroup of the split (``unseen_single``, ``combo_seen0/1/2``,
``held_out_combination``, ``other_cell_line``) and over all held-out conditions (``all``), with
cell-eval2's ``aggregate_metrics`` (its NaN-skipping, per-metric statistic).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from dataclasses import dataclass, field, replace

import anndata as ad
import numpy as np
import pandas as pd

RAW_PRESET = "cell-eval-0.7.6"
SCORE_PRESET = "vcc2026"
SCORE = "vcc2026_score"
CLIP = 1e308  # the largest finite fold-change ratio cell-eval2 accepts: log2 = 1023.15
ALL = "all"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Engine:
    """How cell-eval2 is called for one task: the control label, target genes and threads."""

    target_gene_map: dict[str, str | None]  # condition -> Ensembl id of its target (None: a combination)
    control: str = "control"
    num_threads: int = 1

    def config(self, preset: str):  # noqa: ANN201 - cell_eval2.EvalConfig, imported lazily
        from cell_eval2 import EvalConfig

        with warnings.catch_warnings():  # cell-eval2 0.20 marks the v1 presets deprecated; heldout pins 0.20
            warnings.simplefilter("ignore", FutureWarning)
            base = EvalConfig.from_preset(preset)
        overrides = {"pert_col": "perturbation", "control": self.control, "num_threads": self.num_threads,
                     "target_gene_map": dict(self.target_gene_map)}
        if preset == RAW_PRESET:
            # cell-eval 0.8.2 takes pdex 0.3.0's fold changes: a gene absent from both groups changes by 0, one
            # absent from the control by +inf (from the group, -inf). The preset regularises them with epsilon
            # 1e-9 instead (as pdex 0.2.6 did), which moves rank metrics once such genes are significant (0.37 on
            # a 3x replication of Norman). cell-eval2's clipped path gives pdex's semantics, with +-1023 for
            # +-inf (its clip must be finite): the same ranks, signs and sets, so every metric agrees.
            overrides["de"] = replace(base.de, clip_value=CLIP)
        if preset == SCORE_PRESET:
            # log1p(CP10k) on both sides; no content-hash cache (heldout passes in-memory AnnData)
            overrides |= {"input_type": "lognorm", "cache_strict": False}
        return replace(base, **overrides)


def _quiet() -> None:
    for name in ("cell_eval2", "pdex"):
        logging.getLogger(name).setLevel(logging.ERROR)


def per_perturbation(pred: ad.AnnData, real: ad.AnnData, engine: Engine) -> pd.DataFrame:
    """(perturbation, metric, value, run) rows of both cell-eval2 runs for one prediction."""
    from cell_eval2 import compute_metrics

    _quiet()
    frames = []
    for run, preset in (("raw", RAW_PRESET), ("score", SCORE_PRESET)):
        # pdex draws a progress bar per DE run on stderr; heldout shows one bar over all jobs instead
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            frame = compute_metrics(pred, real, config=engine.config(preset)).to_pandas()
        frame["run"] = run
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def aggregate(rows: pd.DataFrame, subgroups: dict[str, list[str]], engine: Engine) -> dict[str, dict[str, float]]:
    """subgroup -> metric -> aggregate (``all`` included), with cell-eval2's aggregation."""
    import polars as pl
    from cell_eval2.run import metric_output_names

    out: dict[str, dict[str, float]] = {}
    groups = {ALL: sorted({c for members in subgroups.values() for c in members}), **subgroups}
    outputs = {run: metric_output_names(engine.config(preset))
               for run, preset in (("raw", RAW_PRESET), ("score", SCORE_PRESET))}
    for group, members in groups.items():
        values: dict[str, float] = {}
        for run, emitted in outputs.items():
            part = rows[(rows["run"] == run) & rows["perturbation"].isin(members)]
            if part.empty:
                continue
            frame = pl.from_pandas(part[["perturbation", "metric", "value"]])
            present = set(part["metric"])
            names = [n for n in emitted if n in present]
            values |= _aggregate(frame, names)
            derived = [n for n in emitted if n in DERIVED]
            if derived:
                try:  # a ratio of sums is undefined where the reference's summed effect is not positive
                    values |= _aggregate(frame, names + derived)
                except ValueError as exc:
                    values |= dict.fromkeys(derived, math.nan)
                    log.info("%s: %s", group, exc)
        out[group] = values
    return out


DERIVED = ("expr_mse_unbiased_capped_norm",)  # vcc2026's ratio-of-sums member


def _aggregate(frame, names: list[str]) -> dict[str, float]:  # noqa: ANN001 - polars frame
    from cell_eval2 import aggregate_metrics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agg = aggregate_metrics(frame, metrics=names)
    return {m: float(v) for m, v in zip(agg["metric"].to_list(), agg["mean"].to_list(), strict=True)}


@dataclass(frozen=True)
class Scaled:
    """One entry's vcc2026 score in one subgroup, and the members it averages."""

    score: float | None
    members: dict[str, float] = field(default_factory=dict)  # metric -> scaled (0 mean baseline, 1 replicate)
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why it has no scale here


def replicate_scale(value: dict[str, float], base: dict[str, float], replicate: dict[str, float]) -> Scaled:
    """The vcc2026 score: each scored vcc2026 member on cell-eval2's replicate scale, averaged.

    Each member is scored by ``cell_eval2.scoring.score_one`` with the catalog's policy and the
    measured replicate as its anchor (exactly what ``score_metrics`` does with a replicate anchor):
    ``(u - b) / (r - b)`` at its core, with the catalog's clamps and penalty. A member whose two ends
    are missing, not finite or leave no headroom is skipped and named.
    """
    from cell_eval2.catalog import CATALOG, PROFILES
    from cell_eval2.scoring import is_degenerate, score_one

    members, skipped = {}, {}
    for name in PROFILES[SCORE_PRESET]:
        spec = CATALOG[name]
        if not spec.scoring.scored:
            continue
        u, b, r = value.get(name), base.get(name), replicate.get(name)
        if b is None or r is None or not (math.isfinite(b) and math.isfinite(r)):
            skipped[name] = "undefined on these cells (the reference's gate admits no perturbation)"
            continue
        try:
            policy = replace(spec.scoring, anchor=float(r), allow_negative_baseline=False)
        except ValueError as exc:
            skipped[name] = f"replicate {r:.4g} is no usable anchor: {exc}"
            continue
        if is_degenerate(float(b), policy):
            skipped[name] = f"no headroom between the mean baseline ({b:.4g}) and the replicate ({r:.4g})"
            continue
        members[name] = float(score_one(None if u is None or not math.isfinite(u) else float(u), float(b), policy))
    score = float(np.mean(list(members.values()))) if members else None
    return Scaled(score=score, members=members, skipped=skipped)
