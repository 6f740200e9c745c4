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

# VmHWM (this process's own high-water mark) rather than ru_maxrss, which Linux carries over
# from the parent across fork/exec and would report the benchmark driver's peak.
EPILOGUE = """
import json as _j, re as _re
_hwm = _re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read())
RESULT["peak_rss_mib"] = round(int(_hwm.group(1)) / 1024, 1)
print(_j.dumps(RESULT))
"""


def run_step(code: str, *, env: dict | None = None) -> dict:
    """Run ``code`` (which fills a dict named RESULT) in a fresh interpreter; return RESULT."""
    proc = subprocess.run([sys.executable, "-c", code + EPILOGUE], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark step failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
