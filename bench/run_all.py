"""`make bench`: run every benchmark in this folder and print its figures (copy them to docs/benchmarks.md)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARGS = {"hq_scale.py": ["--transactions", "1000000", "--sites", "50", "--members", "100000"]}
"""Scripts whose full size takes long (the 10-million-sale seeding: about 20 minutes) run a short form here; run
them alone for the full figures (docs/benchmarks.md says how)."""


def main() -> int:
    print(f"# {platform.node()} {platform.machine()} Python {platform.python_version()}, "
          f"{len(open('/proc/cpuinfo').read().split('processor')) - 1} cores")
    failed = 0
    for script in sorted(HERE.glob("*.py")):
        if script.name == Path(__file__).name or '__name__ == "__main__"' not in script.read_text():
            continue  # this runner, or a module the scripts import (hq_seed.py)
        print(f"\n## {script.name}", flush=True)
        result = subprocess.run([sys.executable, str(script), *ARGS.get(script.name, [])], check=False)
        failed += result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
