"""Run a benchmark step in a fresh Python process and collect what it reports.

Each step prints one JSON line at the end with its own timings; ``peak_rss_mib``
(ru_maxrss of that process) is added by the step's epilogue, so every number
comes from a process that did nothing else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

EPILOGUE = """
import json as _j, resource as _r
RESULT["peak_rss_mib"] = round(_r.getrusage(_r.RUSAGE_SELF).ru_maxrss / 1024, 1)
print(_j.dumps(RESULT))
"""


def run_step(code: str, *, env: dict | None = None) -> dict:
    """Run ``code`` (which fills a dict named RESULT) in a fresh interpreter; return RESULT."""
    proc = subprocess.run([sys.executable, "-c", code + EPILOGUE], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark step failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
