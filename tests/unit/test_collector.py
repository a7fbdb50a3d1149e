"""A reconciling process collects cyclic garbage less often, and never rescans its imports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


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
