"""Filter evidence: a corpus's Census obs filter applied to the eval cells' own Census-schema metadata.

A corpus defined as "cells of Census V that pass filter F" cannot hold an eval
cell that fails F. The rule: if no eval cell can pass, the corpus cannot hold
the eval data (clean); if some can, only those are at risk and the next check
(the release table) decides them.

The filter is read with :mod:`ast` and evaluated here, never by ``eval`` or
pandas ``query`` (a model card comes from a pull request): only comparisons
(``== != < <= > >= in``, ``not in``), ``and``/``or``/``not``, column names and
literals are understood; anything else makes the evidence inconclusive.

Evaluation is three-valued (Kleene): a cell *surely passes*, *surely fails*, or
is *unknown*. A column the eval data lack is unknown. The per-cell counts the
Census computes over all of a dataset's genes (``nnz``, ``raw_sum``,
``n_measured_vars``) are only lower bounds in a curated file that kept some
genes, so ``nnz >= 200`` can be surely true but never surely false. Only cells
that surely fail are ruled out.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import numpy as np
import pandas as pd

LOWER_BOUNDS = frozenset({"nnz", "raw_sum", "n_measured_vars"})


class FilterNotUnderstood(ValueError):
    """The filter uses syntax heldout does not evaluate."""


@dataclass(frozen=True)
class Truth:
    """Per cell: surely true, surely false (neither: unknown)."""

    true: np.ndarray
    false: np.ndarray

    def __and__(self, other: Truth) -> Truth:
        return Truth(self.true & other.true, self.false | other.false)

    def __or__(self, other: Truth) -> Truth:
        return Truth(self.true | other.true, self.false & other.false)

    def __invert__(self) -> Truth:
        return Truth(self.false, self.true)


def _literal(node: ast.expr) -> object:
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return -node.operand.value  # type: ignore[operator]
    msg = f"not a literal: {ast.dump(node)[:80]}"
    raise FilterNotUnderstood(msg)


def _compare(obs: pd.DataFrame, column: str, op: ast.cmpop, value: object) -> Truth:
    n = len(obs)
    if column not in obs.columns:
        return Truth(np.zeros(n, bool), np.zeros(n, bool))
    series = obs[column]
    if isinstance(op, ast.In | ast.NotIn):
        if not isinstance(value, list):
            raise FilterNotUnderstood("`in` needs a list")
        hit = series.astype(str).isin([str(v) for v in value]).to_numpy() if series.dtype == object or \
            isinstance(series.dtype, pd.CategoricalDtype) else series.isin(value).to_numpy()
        result = Truth(hit, ~hit)
        return ~result if isinstance(op, ast.NotIn) else result
    if isinstance(value, list):
        raise FilterNotUnderstood("a list compared with an operator other than `in`")
    if isinstance(value, bool) or series.dtype == bool:
        left = series.astype(bool).to_numpy()
    elif isinstance(value, str):
        left = series.astype(str).to_numpy()
    else:
        left = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    ops = {ast.Eq: np.equal, ast.NotEq: np.not_equal, ast.Lt: np.less, ast.LtE: np.less_equal,
           ast.Gt: np.greater, ast.GtE: np.greater_equal}
    fn = ops.get(type(op))
    if fn is None:
        msg = f"operator {type(op).__name__}"
        raise FilterNotUnderstood(msg)
    exact = np.asarray(fn(left, value), dtype=bool)
    if column not in LOWER_BOUNDS:
        return Truth(exact, ~exact)
    # the true value is >= the value here: a lower bound can make `>=`/`>`/`!=` surely true and
    # `<`/`<=`/`==` surely false, never the other way round
    if isinstance(op, ast.Gt | ast.GtE):
        return Truth(exact, np.zeros(n, bool))
    if isinstance(op, ast.Lt | ast.LtE):
        return Truth(np.zeros(n, bool), ~exact)
    above = np.asarray(left > value, dtype=bool)  # type: ignore[operator]
    if isinstance(op, ast.Eq):
        return Truth(np.zeros(n, bool), above)
    return Truth(above, np.zeros(n, bool))


def evaluate(expression: str, obs: pd.DataFrame) -> Truth:
    """The filter on every row of ``obs`` (three-valued); :class:`FilterNotUnderstood` for other syntax."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise FilterNotUnderstood(str(exc)) from None
    return _node(tree.body, obs)


def _node(node: ast.expr, obs: pd.DataFrame) -> Truth:
    if isinstance(node, ast.BoolOp):
        parts = [_node(v, obs) for v in node.values]
        out = parts[0]
        for part in parts[1:]:
            out = out & part if isinstance(node.op, ast.And) else out | part
        return out
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return ~_node(node.operand, obs)
    if isinstance(node, ast.Compare):
        left, out = node.left, None
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(left, ast.Name):
                part = _compare(obs, left.id, op, _literal(right))
            elif isinstance(right, ast.Name):
                flipped = {ast.Lt: ast.Gt(), ast.LtE: ast.GtE(), ast.Gt: ast.Lt(), ast.GtE: ast.LtE()}.get(type(op), op)
                part = _compare(obs, right.id, flipped, _literal(left))
            else:
                raise FilterNotUnderstood("a comparison without a column name")
            out = part if out is None else out & part
            left = right
        return out  # type: ignore[return-value]
    msg = f"unsupported expression {type(node).__name__}"
    raise FilterNotUnderstood(msg)


def columns_of(expression: str) -> list[str]:
    tree = ast.parse(expression, mode="eval")
    return sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)})
