"""A rich progress bar over an evaluation's units of work (silent when not asked for).

Embedding tasks count one unit per entry x seed x metric (a metric that does not depend on the
seed advances by every seed at once, when it is computed); perturbation tasks one per scored entry.
"""

from __future__ import annotations


class Progress:
    def __init__(self, total: int, show: bool, description: str = "scoring") -> None:
        self.bar = None
        if show and total > 0:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(description, total=total)

    def advance(self, what: str, units: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=units, description=what)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


SILENT = Progress(0, show=False)
