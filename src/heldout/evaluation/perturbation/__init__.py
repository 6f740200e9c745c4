"""The perturbation task kind: predicted cells of held-out perturbations, scored by cell-eval2.

* :mod:`~heldout.evaluation.perturbation.predictions`: the prediction file, checked against the task;
* :mod:`~heldout.evaluation.perturbation.data`: the held-out and training cells of a perturbation split;
* :mod:`~heldout.evaluation.perturbation.baselines`: control, mean, additive, linear, technical replicate;
* :mod:`~heldout.evaluation.perturbation.engine`: cell-eval2's metrics and the vcc2026 replicate scale;
* :mod:`~heldout.evaluation.perturbation.evaluate`: the tier gate, scoring in parallel, the result.
"""
