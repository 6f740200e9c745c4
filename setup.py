"""Build hook: the wheel carries the registry template (see src/heldout/template.py).

The cards, schemas, curation maps, pipeline and contributing guide live once, at the top of this
checkout (they are this project's own registry). Building a wheel copies them into the package as
``heldout/_registry_template``, so `heldout init` works from an installed wheel, outside any checkout.
MANIFEST.in puts the same files in the sdist, so a wheel built from the sdist carries them too.
"""

import runpy
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
TEMPLATE = runpy.run_path(str(ROOT / "src" / "heldout" / "template.py"))


class BuildWithRegistryTemplate(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the template from the checkout
            return
        dest = Path(self.build_lib) / "heldout" / TEMPLATE["BUNDLE_NAME"]
        shutil.rmtree(dest, ignore_errors=True)
        for folder in TEMPLATE["TEMPLATE_DIRS"]:
            shutil.copytree(ROOT / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
        for name in TEMPLATE["TEMPLATE_FILES"]:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)


setup(cmdclass={"build_py": BuildWithRegistryTemplate})
