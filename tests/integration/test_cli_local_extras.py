"""Installed without the `local` extras (no moto), commands that need the emulator say what to
install in one line and exit 2; no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mesh_emulator.server import (
    LOCAL_EXTRAS_MISSING,
    LocalEmulator,
    LocalExtrasMissingError,
)

VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"
# Imported by Python at start-up from PYTHONPATH: moto becomes unimportable, as if not installed.
BLOCK_MOTO = "import sys\nsys.modules['moto'] = None\n"


def test_demo_without_moto_prints_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(BLOCK_MOTO)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = str(tmp_path)
    done = subprocess.run(
        [str(VENV_BIN / "resolver-mesh"), "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == LOCAL_EXTRAS_MISSING + "\n"
    assert done.stdout == ""
    assert LOCAL_EXTRAS_MISSING == (
        "the local emulator needs the 'local' extras: pip install -e '.[local]'"
    )


def test_the_emulator_itself_refuses_with_the_same_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "moto.server", None)
    with pytest.raises(LocalExtrasMissingError, match=r"^the local emulator needs the 'local'"):
        LocalEmulator().start()
