"""The box stays light: running the agent loads nothing of the hub's libraries."""

from __future__ import annotations

import json
import subprocess
import sys

HUB_ONLY = ["fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg", "argon2", "cloud"]


def test_the_agent_and_its_cli_import_no_hub_library() -> None:
    code = (
        "import sys, json, edge.cli, edge.agent, edge.simulator.site; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    loaded = set(json.loads(out))
    assert {"edge", "protocol", "serial", "paho"} <= loaded
    assert loaded.isdisjoint(HUB_ONLY), loaded & set(HUB_ONLY)
