"""The heldout command line: a thin click layer over the library.

Each command parses its options, calls one library function and renders the
result. Errors are mapped to exit codes in exactly one place, :func:`main`'s
group (``HeldoutCLI.invoke``), from each ``HeldoutError`` subclass's ``exit_code``.
"""

from __future__ import annotations

import logging
import sys

import click
from rich.markup import escape

from heldout.cli._render import FreshConsole
from heldout.errors import HeldoutError

err_console = FreshConsole(stderr=True, highlight=False)
OS_ERROR_EXIT = 2  # as click's usage errors: the input (a path) is wrong


class HeldoutCLI(click.Group):
    """Maps every HeldoutError to ``ERROR: ... / Tip: ...`` on stderr and its exit code."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        try:
            return super().invoke(ctx)
        except HeldoutError as exc:
            err_console.print(f"[bold red]ERROR[/]: {escape(exc.message)}", markup=True, soft_wrap=True)
            if exc.hint:
                err_console.print(f"[bold]Tip[/]: {escape(exc.hint)}", markup=True, soft_wrap=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:  # a path the user gave that cannot be read or written: a user error, not a bug
            where = f": {exc.filename}" if exc.filename else ""
            err_console.print(f"ERROR: {exc.strerror or exc}{where}", markup=False, soft_wrap=True)
            err_console.print("Tip: check the path and its permissions.", markup=False, soft_wrap=True)
            ctx.exit(OS_ERROR_EXIT)


@click.group(cls=HeldoutCLI, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="heldout")
@click.option("-v", "--verbose", is_flag=True, help="Log what heldout resolves (versions, paths).")
def cli(verbose: bool) -> None:
    """heldout: curate, release and audit evaluation datasets for single-cell models.

    \b
    Typical flow:
      heldout mirror build          build the local mini-Census (offline)
      heldout curate NAME           pull a card's cells into a validated h5ad
      heldout split NAME            donor-disjoint train/validation/test split
      heldout release VERSION       immutable, checksummed release (DVC + git tag)
      heldout pull NAME@VERSION     fetch and verify a released dataset
      heldout audit --model MODEL   leakage tier of every (model, dataset) pair
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")


def _register() -> None:
    from heldout.cli import commands_corpus, commands_data, commands_leakage, commands_release

    for module in (commands_data, commands_release, commands_leakage, commands_corpus):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="heldout")


if __name__ == "__main__":
    sys.exit(main())
