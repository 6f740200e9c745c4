"""CLI: lint, release, retract, pull, list, show."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from heldout.cli import _render
from heldout.cli._render import console
from heldout.cli.commands_data import MIRROR_OPTION
from heldout.errors import CardError

REGISTRY_OPTION = click.option("--registry", default=None,
                               help="Registry repo: a path or git URL (default: this project).")


@click.command()
@click.option("--dry-run", is_flag=True, help="Resolve every card against its Census and report counts.")
@click.option("--changed-since", default=None, metavar="REF",
              help="The pull-request check: every file changed since git REF (e.g. origin/main) is checked "
                   "(cards, params.yaml, curation maps), changes to protected paths and better model tiers need "
                   "--approved, and changes to what a released card pins are refused.")
@click.option("--approved", is_flag=True,
              help="A maintainer approved this pull request's protected changes (the workflow passes it when the "
                   "PR carries the `heldout-approved` label).")
@click.option("--summary", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the result as Markdown to this file (a pull request's CI summary).")
@MIRROR_OPTION
def lint(dry_run: bool, changed_since: str | None, approved: bool, summary: Path | None,
         mirror_root: Path | None) -> None:
    """Check every dataset card (schema, pinned version, filter, label columns).

    CI runs this on every pull request (ci/check-dataset-pr in a registry made by
    `heldout init`; see CONTRIBUTING.md and SECURITY.md). Nothing is fetched from
    the network and nothing but the --summary file is written.
    """
    from heldout._files import write_text_atomic
    from heldout.lint import lint_cards, markdown_summary

    if changed_since:
        from heldout.pr_check import check_pull_request, markdown

        check = check_pull_request(changed_since, dry_run=dry_run, mirror_root=mirror_root, approved=approved)
        results = check.cards
        text = markdown(check, dry_run=dry_run)
    else:
        check = None
        results = lint_cards(dry_run=dry_run, mirror_root=mirror_root)
        text = markdown_summary(results, dry_run=dry_run)
    if summary:
        write_text_atomic(summary, text)
    columns = ["card", "status"] + (["datasets", "donors", "cells"] if dry_run else [])
    _render.table("dataset cards", columns, (
        [r.name, "ok" if not r.problems else f"{len(r.problems)} problem(s)"]
        + ([r.n_datasets, r.n_donors, r.n_cells] if dry_run else []) for r in results))
    for r in results:  # one line per problem, below the table
        for problem in r.problems:
            console.print(f"{r.name}: {problem}", markup=False, soft_wrap=True)
        for note in r.notes:
            console.print(f"{r.name} (note): {note}", markup=False, soft_wrap=True)
    if check is not None:
        for change in (c for c in check.tier_changes if c.before != c.after):
            console.print(f"tier {change.model} x {change.dataset}: {change.before} -> {change.after}"
                          f"{'  (better: needs approval)' if change.improved else ''}", markup=False)
        for finding in check.findings:
            console.print(f"{finding.path} ({finding.kind}): {finding.message}", markup=False, soft_wrap=True)
    bad = [r.name for r in results if r.problems]
    if bad:
        raise CardError(f"{len(bad)} card(s) failed lint: {', '.join(bad)}.")
    if check is not None and not check.ok:
        from heldout.pr_check import APPROVAL_LABEL

        if check.problems:
            raise CardError(f"{len(check.problems)} changed file(s) failed the check: "
                            f"{', '.join(sorted({f.path for f in check.problems}))}.")
        raise CardError(f"{len(check.approvals)} change(s) need a maintainer's approval: "
                        f"{', '.join(sorted({f.path for f in check.approvals}))}.",
                        hint=f"A maintainer reviews them and adds the `{APPROVAL_LABEL}` label (CI then runs with "
                             "--approved).")


@click.command()
@click.argument("version")
@click.option("--stable", is_flag=True, help="Also point the `stable` alias at this release.")
@click.option("--remote", default=None, help="DVC remote name (default: the repo's default remote).")
@click.option("--allow-unchanged", is_flag=True,
              help="Release even if every artifact is identical to the latest release's.")
@click.option("--changelog", default="", help="What changed since the previous release (recorded in the manifest; "
              "required to name a released card whose pinned fields changed).")
def release(version: str, stable: bool, remote: str | None, allow_unchanged: bool, changelog: str) -> None:
    """Release every dataset in params.yaml as VERSION (e.g. v1).

    Refuses a dirty git tree, a stale DVC pipeline, an unvalidated artifact, a
    pipeline output committed to git, and a release identical to the latest one.
    Writes registry/releases/VERSION.yaml (paths, sha256, sizes, counts, census
    version, code version), pushes to the DVC remote, commits and tags
    release/VERSION. Releases are never overwritten.
    """
    from heldout.releases import create_release

    manifest = create_release(version, stable=stable, remote=remote, allow_unchanged=allow_unchanged,
                              changelog=changelog)
    _render.table(f"release {version} (remote {manifest.dvc_remote['url']})", ["dataset", "cells", "donors", "census"],
                  ((n, d.n_cells, d.n_donors, f"{d.census_source} {d.census_version}")
                   for n, d in manifest.datasets.items()))


@click.command()
def doctor() -> None:
    """Find and repair a release that was killed half-way (also done by the next `heldout release`).

    A release exists once it is tagged. Killed after its commit, it is tagged now;
    killed before, its manifest is removed and the index restored from git, so the
    registry is exactly as before it started.
    """
    from heldout.project import find_project
    from heldout.releases import recover

    actions = recover(find_project())
    for action in actions:
        console.print(action, soft_wrap=True)
    if not actions:
        console.print("registry ok: no interrupted release")


@click.command()
@click.argument("version")
@click.option("--reason", required=True, help="Why the release is withdrawn (shown to everyone who pulls it).")
@click.option("--replaced-by", default=None, help="The release users should use instead.")
def retract(version: str, reason: str, replaced_by: str | None) -> None:
    """Retract release VERSION: it stays pullable, with a warning; aliases move off it."""
    from heldout.releases import retract_release

    index = retract_release(version, reason=reason, replaced_by=replaced_by)
    console.print(f"retracted {version}; aliases now {dict(index.aliases)}")


@click.command()
@click.argument("ref")
@REGISTRY_OPTION
@click.option("--artifact", default="h5ad", show_default=True,
              help="Which artifact: h5ad, lock, fingerprints, split_assignment, ...")
@click.option("--remote-url", default=None, help="Override the DVC remote recorded in the release.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the file here; for the h5ad, the AnnData that describes itself (obs['split'], "
                   "uns['heldout']: release, retraction, sha256, card, lock, Census source, split seed).")
@click.option("--split", "split", default=None, help="With -o and the h5ad: keep only this split's cells (e.g. test).")
def pull(ref: str, registry: str | None, artifact: str, remote_url: str | None, out: Path | None,
         split: str | None) -> None:
    """Fetch NAME@VERSION (NAME alone = stable) through DVC and verify its sha256.

    REF may also be the Croissant file (or URL) of a release: registry/releases/croissant/VERSION/NAME.json.
    """
    from heldout.pull import from_croissant, write_pulled
    from heldout.pull import pull as run

    if split and (artifact != "h5ad" or not out):
        raise click.UsageError("--split needs -o/--out and the h5ad artifact.")
    ref, registry = from_croissant(ref, registry)  # type: ignore[assignment]
    pulled = run(ref, registry=registry, artifact=artifact, remote_url=remote_url)
    if out:
        write_pulled(pulled, out, registry=registry, split=split)
    note = " [yellow](RETRACTED release)[/]" if pulled.retracted else ""
    where: object = out or pulled.path
    if out and artifact == "h5ad":
        where = f"{out} (with obs['split'] and uns['heldout']{'; ' + split + ' cells only' if split else ''})"
    console.print(f"{pulled.name}@{pulled.version} {artifact} (sha256 {pulled.artifact.sha256[:12]}..., verified): "
                  f"{where}{note}", soft_wrap=True)


@click.command("list")
@REGISTRY_OPTION
def list_cmd(registry: str | None) -> None:
    """Datasets x released versions, with aliases and retractions."""
    from heldout.pull import list_releases

    rows = list_releases(registry)
    _render.table("released datasets (pull with `heldout pull NAME@VERSION`)",
                  ["NAME@VERSION", "alias", "cells", "donors", "census", "status"],
                  ((f"{r.dataset}@{r.version}", r.aliases.replace(",", " "), r.n_cells, r.n_donors, r.census,
                    r.status.split(":")[0]) for r in rows), keep=["NAME@VERSION"], fold=["alias"])
    for version, status in sorted({(r.version, r.status) for r in rows if r.status != "ok"}):
        console.print(f"{version} {status}", markup=False, soft_wrap=True)


@click.command()
@click.argument("ref")
@REGISTRY_OPTION
def show(ref: str, registry: str | None) -> None:
    """Print the card, lock and counts of NAME@VERSION."""
    from heldout.pull import show as run

    console.print(yaml.safe_dump(run(ref, registry), sort_keys=False), markup=False)


COMMANDS = [lint, release, doctor, retract, pull, list_cmd, show]


@click.command()
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--remote", default=None, help="DVC remote URL (default: a folder PATH-dvc-remote beside it).")
def init(path: Path, remote: str | None) -> None:
    """Create a new registry repo at PATH: git + DVC + heldout's registry template (cards, schemas,
    curation maps, dvc.yaml, params.yaml, contributing guide, PR template) + the CI that checks
    dataset pull requests (ci/check-dataset-pr and a GitHub Actions workflow calling it)."""
    from heldout.scaffold import init_registry

    project = init_registry(path, remote=remote)
    console.print(f"registry at {project.root}\n"
                  f"next: cd {path} && dvc repro && git add -A && git commit -m 'Build' && heldout release v1\n"
                  "a dataset PR is checked by ci/check-dataset-pr BASE (CI: .github/workflows/dataset-pr.yml)",
                  markup=False, soft_wrap=True)


COMMANDS.append(init)


@click.group()
def site() -> None:
    """The registry as a static website (plain files any static host serves)."""


@site.command("build")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@REGISTRY_OPTION
@click.option("--results", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="An evaluation results folder (heldout evaluate --results) for the leaderboards.")
@MIRROR_OPTION
def site_build(out: Path, registry: str | None, results: Path | None, mirror_root: Path | None) -> None:
    """Write the registry's website to OUT: datasets x versions (cards, counts, checksums, pull commands,
    Croissant files), model cards, the tier grid of the latest release with its evidence, leaderboards,
    and an identifier lookup that runs in the browser. No server, no CDN: open OUT/index.html, or publish
    OUT on any static host (e.g. GitHub Pages: push OUT to a gh-pages branch).
    """
    from heldout.site.build import build_site

    built = build_site(out, registry=registry, results=results, mirror_root=mirror_root)
    console.print(f"wrote {len(built.pages)} files to {built.root} ({built.pairings} pairings in the tier grid, "
                  f"{built.lookup_keys:,} identifiers in the lookup index); open {built.root / 'index.html'}",
                  soft_wrap=True)


COMMANDS.append(site)

