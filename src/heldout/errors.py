"""The one error hierarchy of heldout.

Every failure a user can cause or meet is a :class:`HeldoutError`. Each
subclass carries its own ``exit_code``; the CLI maps errors to exit codes in
one place (``heldout.cli._errors``) by reading that attribute. Messages name
the bad value, what is allowed, and how to fix it; ``hint`` holds the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HeldoutError(Exception):
    """Base class of every error heldout raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nTip: {self.hint}"


class UsageError(HeldoutError):
    """Bad arguments that click itself cannot catch (e.g. an unknown name)."""

    exit_code = 2


class CardError(HeldoutError):
    """A card (dataset, model, task) is missing, malformed or inconsistent."""

    exit_code = 3


class SourceError(HeldoutError):
    """The Census source (real or mirror) cannot be opened or is corrupt."""

    exit_code = 4


class ValidationFailed(HeldoutError):
    """A dataset or map does not satisfy its pandera schema."""

    exit_code = 5

    def __init__(self, message: str, *, report: object = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.report = report


class SplitLeakError(HeldoutError):
    """A split puts one donor (or one cell) into two partitions."""

    exit_code = 6


class ReleaseError(HeldoutError):
    """A release cannot be made, found, or is inconsistent."""

    exit_code = 7


class ChecksumMismatch(ReleaseError):
    """An artifact's bytes do not match the sha256 its manifest records."""

    exit_code = 8


class LeakageRefused(HeldoutError):
    """A (model, dataset) pairing is RED: the model was task-trained on it."""

    exit_code = 9


class EvaluationError(HeldoutError):
    """Model outputs do not fit the dataset (ids, shapes) or a task is impossible."""

    exit_code = 10


def did_you_mean(value: str, allowed: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest allowed value, or ``""``."""
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown_choice(kind: str, value: str, allowed: Iterable[str], *, hint: str | None = None) -> UsageError:
    """Build the standard error for a value outside a closed set of choices."""
    allowed = sorted(str(a) for a in allowed)
    shown = ", ".join(repr(a) for a in allowed) if allowed else "(none)"
    msg = f"Unknown {kind} {value!r}. Allowed: {shown}.{did_you_mean(value, allowed)}"
    return UsageError(msg, hint=hint)
