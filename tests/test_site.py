"""`heldout site build`: the registry as a static site, driven in a real browser (Debian's headless Chromium).

The registry is the README walkthrough's (releases v1 and v2, the bundled model cards and corpus lists).
Screenshots are written to test-artifacts/site/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from heldout.project import Project
from heldout.site.build import build_site

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "site"


@pytest.fixture(scope="module")
def site(registry: Project, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    built = build_site(out, registry=str(registry.root))
    assert built.pairings == 12 * 8 and built.lookup_keys > 10_000  # 12 model cards x 8 released datasets
    return out


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Debian's chromium is not installed here (.ci/run installs it)")
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                           "--virtual-time-budget=10000", *args], capture_output=True, text=True, timeout=180,
                          check=True)


def console_messages(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


def test_the_site_is_plain_files_with_no_external_asset(site: Path) -> None:
    for name in ("index.html", "datasets.html", "models.html", "tiers.html", "leaderboards.html", "lookup.html",
                 "lookup.js", "lookup-index.js", "style.css", "datasets/glioma-tirosh2016.html",
                 "models/scfoundation.html", "croissant/v2/glioma-tirosh2016.json"):
        assert (site / name).is_file(), name
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert not re.search(r"""(src|href)=["']https?://""", text), page  # no CDN, renders offline
        assert '<th scope="col">' in text or page.name in ("index.html", "lookup.html", "leaderboards.html"), page
    dataset = (site / "datasets" / "glioma-tirosh2016.html").read_text()
    assert "heldout pull glioma-tirosh2016@v2 --registry" in dataset and "sha256" in dataset
    assert 'href="../croissant/v2/glioma-tirosh2016.json"' in dataset and "184 cells" in dataset
    assert "Supplementary Data 1" in (site / "models" / "scfoundation.html").read_text()


def test_the_browser_shows_every_pairing_finds_gse133344_and_logs_nothing(site: Path, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    profile = tmp_path / "profile"
    grid = chromium("--dump-dom", (site / "tiers.html").as_uri(), profile=profile)
    table = grid.stdout[grid.stdout.index('<table id="grid"'):]
    table = table[:table.index("</table>")]
    cells = re.findall(r'<a class="tier (GREEN|YELLOW|RED|GRAY)" href="#([^"]+)">\1</a>', table)
    assert len(cells) == 12 * 8  # every registry model x every released dataset
    assert all(f'id="{anchor}"' in grid.stdout for _, anchor in cells)  # each links to its evidence
    assert ("GREEN", "scfoundation-x-glioma-tirosh2016") in cells
    assert not console_messages(grid), console_messages(grid)
    found = chromium("--dump-dom", (site / "lookup.html").as_uri() + "?q=GSE133344", profile=profile)
    seen = re.search(r"Seen by: ([^<.]*)\.", found.stdout)
    assert seen and set(seen.group(1).split(", ")) == {"aido-cell", "gears-norman", "scfoundation",
                                                       "scgpt-perturbation-norman"}
    assert "125,081 cells reserved" in found.stdout and "GEO-GSM3906020" in found.stdout
    assert not console_messages(found), console_messages(found)
    absent = chromium("--dump-dom", (site / "lookup.html").as_uri() + "?q=GEO-GSE84133", profile=profile)
    assert "Seen by: no registry model." in absent.stdout and "not seen" in absent.stdout
    for page in ("index.html", "datasets.html", "models.html", "datasets/glioma-tirosh2016.html"):
        proc = chromium("--dump-dom", (site / page).as_uri(), profile=profile)
        assert "<main>" in proc.stdout and not console_messages(proc), (page, console_messages(proc))
    import matplotlib.image as mpimg

    for name, url in (("tier-grid.png", (site / "tiers.html").as_uri()),
                      ("lookup-gse133344.png", (site / "lookup.html").as_uri() + "?q=GSE133344")):
        png = ARTIFACTS / name
        chromium("--window-size=1300,900", f"--screenshot={png}", url, profile=profile)
        pixels = mpimg.imread(png)
        assert pixels.shape[0] >= 800 and pixels[..., :3].std() > 0.05, name  # rendered, not blank
