"""A reconciling process collects cyclic garbage less often, and never rescans its imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_function_s_process_freezes_its_imports_once_and_collects_less_often() -> None:
    script = textwrap.dedent(
        """
        import gc, json
        import resolver_mesh.reconcile as reconcile
        before = gc.get_threshold()
        reconcile.tune_collector()
        frozen = gc.get_freeze_count()
        kept = [[object()] for _ in range(1000)]
        reconcile.tune_collector()
        print(json.dumps([before, gc.get_threshold(), frozen, gc.get_freeze_count()]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    before, after, frozen, frozen_again = json.loads(done.stdout)
    assert before[0] < 50_000  # Python's own
    assert tuple(after) == (50_000, 20, 10)
    assert frozen > 1000  # the imports
    assert frozen_again == frozen  # once per process: what is frozen is never collected


def test_cycles_are_collected_after_50_000_allocations_not_700() -> None:
    script = textwrap.dedent(
        """
        import gc, json, weakref
        import resolver_mesh.reconcile as reconcile
        reconcile.tune_collector()
        gc.collect()
        class Node: pass
        first, second = Node(), Node()
        first.other, second.other = second, first
        gone = weakref.ref(first)
        del first, second
        kept = [[] for _ in range(1_000)]
        after_1000 = gone() is None
        kept += [[] for _ in range(60_000)]
        print(json.dumps([after_1000, gone() is None]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout) == [False, True]


def tuned_by(code: str) -> list[int]:
    """The collector's thresholds in a fresh process after `code`, run with the handler's
    directory on the path and no AWS settings (a command fails at once, after tuning)."""
    script = code + "\nimport gc, json\nprint(json.dumps(gc.get_threshold()))"
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "HOME_REGION", "HUBS_TABLE"))
    }
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "functions" / "reconciler"), str(ROOT / "layers" / "core")]
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=environment,
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_handler_and_the_command_tune_the_collector_and_main_in_process_does_not() -> None:
    assert tuned_by("import app") == [50_000, 20, 10]
    command = "from resolver_mesh import cli\nimport sys\nsys.argv = ['resolver-mesh', 'plan']"
    assert tuned_by(command + "\ncli.console()") == [50_000, 20, 10]
    assert tuned_by("from resolver_mesh import cli\ncli.main(['plan'])")[0] < 50_000
