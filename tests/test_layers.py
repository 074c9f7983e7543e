"""The import contracts (pyproject.toml, [tool.importlinter]) hold: core imports no framework nor
bot/ or web/, and inside core each layer imports only the layers below it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "core is layered KEPT" in result.stdout
    assert "core imports no messenger or web framework, nor bot or web KEPT" in result.stdout
