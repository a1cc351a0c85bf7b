"""`make bench`: run every benchmark in this folder and print its figures (copy them to docs/benchmarks.md)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    print(f"# {platform.node()} {platform.machine()} Python {platform.python_version()}, "
          f"{len(open('/proc/cpuinfo').read().split('processor')) - 1} cores")
    failed = 0
    for script in sorted(HERE.glob("*.py")):
        if script.name == Path(__file__).name:
            continue
        print(f"\n## {script.name}", flush=True)
        result = subprocess.run([sys.executable, str(script)], check=False)
        failed += result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
