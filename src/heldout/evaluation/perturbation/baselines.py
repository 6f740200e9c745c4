"""Baselines and the ceiling heldout computes on the task's own split, each scored like a model.

All work on log1p(CP10k) pseudobulks of the training cells. A *delta* is a training condition's mean
minus its cell line's training-control mean.

* ``control`` (negative): no change, the basal cells themselves;
* ``mean`` (the vcc2026 scale's 0): the mean delta of the training conditions, for every condition;
* ``additive``: the sum of the genes' single deltas (Ahlmann-Eltze et al. 2025's additive model for a
  combination; a single takes its own delta when it was trained in another cell line). A gene with
  no trained single contributes the mean delta, and the result counts such genes;
* ``linear``: Ahlmann-Eltze et al.'s linear model (``run_linear_pretrained_model.R`` of
  const-ae/linear_perturbation_prediction-Paper), with both embeddings from the training data: the
  gene embedding ``G`` is the K = 10 PCA of the training pseudobulk (genes x conditions, conditions
  centred, as ``irlba::prcomp_irlba``); a perturbation is embedded by its target gene's row of ``G``
  and a combination by the sum of its genes' rows; ``Y - rowMeans(Y) = G W P`` is solved with ridge
  lambda = 0.1 on both sides. A training condition whose target is not a measured gene cannot be
  embedded (the paper drops it); with fewer than two embeddable ones the model is not applicable
  (the paper stops) and the result says so. A held-out condition that cannot be embedded is
  predicted as the training mean (``center``), and counted;
* ``technical_replicate`` (positive, the scale's 1): half of each held-out condition's real cells
  (and of the controls) predicting the other half, over the task's seeds.

A profile becomes cells by shifting the basal cells (the line's training controls, or its held-out
controls when it has none in training, as in the cross-cell-line split) by the predicted delta,
clipped at zero, so every prediction carries real cell-to-cell variation. The basal cells are
the prediction's own controls, as in cell-eval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from heldout.cards.perturbation import CONTROL
from heldout.evaluation.perturbation.data import PerturbationData, frame

PCA_DIM = 10
RIDGE = 0.1


@dataclass(frozen=True, eq=False)
class Entry:
    """One scored entry: per cell line (context), the predicted cells and the real cells they face."""

    name: str
    role: str  # model | negative | baseline | positive
    preds: dict[str, ad.AnnData]  # line -> predicted cells (controls included)
    reals: dict[str, ad.AnnData] | None = None  # line -> reference; None: the task's held-out cells
    seed: int | None = None
    notes: list[str] = field(default_factory=list)


def _mean(x: sp.csr_matrix) -> np.ndarray:
    return np.asarray(x.mean(axis=0)).ravel()


@dataclass(frozen=True, eq=False)
class Training:
    """Pseudobulk deltas of the training conditions, per cell line, and the basal cells of each test line."""

    deltas: pd.DataFrame  # (line, condition) rows x genes
    profiles: pd.DataFrame  # (line, condition) rows x genes: the training condition means (log1p)
    basal: dict[str, ad.AnnData]  # test line -> basal (control) cells

    @property
    def mean_delta(self) -> np.ndarray:
        return self.deltas.to_numpy().mean(axis=0)

    def single(self, gene: str, line: str) -> np.ndarray | None:
        """A gene's single delta: from this line if trained there, else averaged over the lines that trained it."""
        if (line, gene) in self.deltas.index:
            return self.deltas.loc[(line, gene)].to_numpy()
        rows = self.deltas.xs(gene, level=1, drop_level=False) if gene in self.deltas.index.get_level_values(1) \
            else None
        return None if rows is None or rows.empty else rows.to_numpy().mean(axis=0)


def training(data: PerturbationData) -> Training:
    train = data.train
    cond = train.obs["perturbation"].astype(str).to_numpy()
    line = train.obs["cell_line"].astype(str).to_numpy()
    x = sp.csr_matrix(train.X)
    deltas, profiles, index = [], [], []
    for value in sorted(set(line)):
        ctrl = (line == value) & (cond == CONTROL)
        if not ctrl.any():
            continue
        base = _mean(x[ctrl])
        for c in sorted(set(cond[(line == value) & (cond != CONTROL)])):
            profile = _mean(x[(line == value) & (cond == c)])
            profiles.append(profile)
            deltas.append(profile - base)
            index.append((value, c))
    if not index:
        from heldout.errors import EvaluationError

        msg = "The training splits hold no perturbed condition beside its line's controls; no baseline can learn."
        raise EvaluationError(msg, hint="Check the task's train_splits and the dataset's split.")
    idx = pd.MultiIndex.from_tuples(index, names=["line", "condition"])
    basal = {}
    for value, real in data.real.items():
        own = (line == value) & (cond == CONTROL)
        if own.any():
            basal[value] = frame(x[own], cond[own], line[own], train.obs_names[own], data.genes)
        else:  # a line predicted from others: its held-out controls are the only basal state there is
            ctrl = real.obs["perturbation"].to_numpy() == CONTROL
            basal[value] = real[ctrl].copy()
    return Training(deltas=pd.DataFrame(np.vstack(deltas), index=idx, columns=data.genes),
                    profiles=pd.DataFrame(np.vstack(profiles), index=idx, columns=data.genes), basal=basal)


def emit(basal: ad.AnnData, shifts: dict[str, np.ndarray], genes: pd.Index) -> ad.AnnData:
    """Predicted cells: for each condition, the basal cells shifted by its delta (clipped at 0); then the basal cells."""
    base = sp.csr_matrix(basal.X).toarray()
    blocks, labels = [], []
    for condition, shift in shifts.items():
        blocks.append(np.clip(base + shift[None, :].astype(np.float32), 0, None))
        labels += [condition] * base.shape[0]
    blocks.append(base)
    labels += [CONTROL] * base.shape[0]
    x = sp.csr_matrix(np.vstack(blocks).astype(np.float32))
    n = x.shape[0]
    return frame(x, np.asarray(labels, dtype=object), np.full(n, str(basal.obs["cell_line"].iloc[0])),
                 pd.Index([f"c{i}" for i in range(n)]), genes)


def _conditions(real: ad.AnnData) -> list[str]:
    return sorted(set(real.obs["perturbation"].astype(str)) - {CONTROL})


def control_entry(data: PerturbationData, fit: Training) -> Entry:
    zero = np.zeros(len(data.genes))
    return Entry("control", "negative", {line: emit(fit.basal[line], {c: zero for c in _conditions(real)}, data.genes)
                                         for line, real in data.real.items()})


def mean_entry(data: PerturbationData, fit: Training) -> Entry:
    delta = fit.mean_delta
    return Entry("mean", "baseline", {line: emit(fit.basal[line], {c: delta for c in _conditions(real)}, data.genes)
                                      for line, real in data.real.items()})


def additive_entry(data: PerturbationData, fit: Training) -> Entry:
    preds, missing = {}, set()
    for line, real in data.real.items():
        shifts = {}
        for c in _conditions(real):
            parts = []
            for gene in c.split("+"):
                single = fit.single(gene, line)
                if single is None:
                    missing.add(gene)
                    single = fit.mean_delta
                parts.append(single)
            shifts[c] = np.sum(parts, axis=0)
        preds[line] = emit(fit.basal[line], shifts, data.genes)
    notes = [f"additive: {len(missing)} gene(s) without a trained single took the mean delta "
             f"({', '.join(sorted(missing)[:8])})"] if missing else []
    return Entry("additive", "baseline", preds, notes=notes)


def _pca_scores(matrix: np.ndarray, k: int) -> np.ndarray:
    """prcomp(matrix, center=TRUE)$x[, 1:k]: rows' scores after centring the columns (signs are arbitrary)."""
    centred = matrix - matrix.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    return u[:, :k] * s[:k]


def fit_linear(profiles: np.ndarray, changes: np.ndarray, genes: list[str], train_targets: list[list[str]],
               test_targets: list[list[str]], *, k: int = PCA_DIM, ridge: float = RIDGE
               ) -> tuple[np.ndarray, list[bool]] | None:
    """Predicted changes (test conditions x genes) of the linear model, and which test conditions it embedded.

    ``profiles`` and ``changes`` are training conditions x genes (means, and means minus the control).
    ``None`` when fewer than two training conditions can be embedded.
    """
    position = {g: i for i, g in enumerate(genes)}
    g_emb = _pca_scores(profiles.T, min(k, *profiles.shape))  # genes x K
    usable = [i for i, t in enumerate(train_targets) if len(t) == 1 and t[0] in position]
    if len(usable) < 2:
        return None
    p_train = np.stack([g_emb[position[train_targets[i][0]]] for i in usable], axis=1)  # K x n
    y = changes[usable].T  # genes x n
    center = y.mean(axis=1, keepdims=True)
    a, b = g_emb, p_train
    left = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ (y - center) @ b.T)
    w = np.linalg.solve((b @ b.T + ridge * np.eye(b.shape[0])).T, left.T).T
    out, embedded = [], []
    for targets in test_targets:
        if all(t in position for t in targets):
            p = np.sum([g_emb[position[t]] for t in targets], axis=0)
            out.append((a @ w @ p) + center[:, 0])
            embedded.append(True)
        else:
            out.append(center[:, 0])
            embedded.append(False)
    return np.vstack(out), embedded


def linear_entry(data: PerturbationData, fit: Training, symbols: dict[str, str]) -> Entry | str:
    """The linear baseline, or why it is not applicable on these genes."""
    train_conditions = list(fit.profiles.index.get_level_values(1))
    genes = [symbols.get(g, g) for g in data.genes]
    to_targets = lambda c: c.split("+")  # noqa: E731
    preds, fallback = {}, 0
    for line, real in data.real.items():
        conditions = _conditions(real)
        result = fit_linear(fit.profiles.to_numpy(), fit.deltas.to_numpy(), genes,
                            [to_targets(c) for c in train_conditions], [to_targets(c) for c in conditions])
        if result is None:
            measured = sum(len(t) == 1 and t[0] in set(genes) for t in map(to_targets, set(train_conditions)))
            return (f"linear: not applicable: {measured} of {len(set(train_conditions))} training conditions target "
                    f"a measured gene (the model embeds a perturbation by its target's row of the expression PCA, "
                    f"and needs at least two)")
        predicted, embedded = result
        fallback += embedded.count(False)
        preds[line] = emit(fit.basal[line], dict(zip(conditions, predicted, strict=True)), data.genes)
    notes = [f"linear: {fallback} held-out condition(s) target an unmeasured gene and were predicted as the "
             f"training mean"] if fallback else []
    return Entry("linear", "baseline", preds, notes=notes)


def replicate_entries(data: PerturbationData, seeds: list[int]) -> list[Entry]:
    """Half of each held-out condition's cells (and of the controls) predicting the other half, per seed."""
    out = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        preds, reals = {}, {}
        for line, real in data.real.items():
            cond = real.obs["perturbation"].astype(str).to_numpy()
            half = np.zeros(len(cond), dtype=bool)
            for c in sorted(set(cond)):
                idx = rng.permutation(np.flatnonzero(cond == c))
                half[idx[: len(idx) // 2]] = True
            preds[line], reals[line] = real[half].copy(), real[~half].copy()
        out.append(Entry("technical_replicate", "positive", preds, reals=reals, seed=seed))
    return out
