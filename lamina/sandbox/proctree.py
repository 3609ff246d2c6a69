"""Process-tree helpers for hosts without cgroups: find, signal and measure a tree via /proc."""
from __future__ import annotations

import os
import signal


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                out.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return out


def tree_pids(root: int) -> list[int]:
    """`root` and its live descendants, parents before children."""
    order, todo, seen = [], [root], set()
    while todo:
        pid = todo.pop(0)
        if pid in seen or not os.path.exists(f"/proc/{pid}"):
            continue
        seen.add(pid)
        order.append(pid)
        todo.extend(children(pid))
    return order


def signal_pids(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def signal_tree(root: int, sig: signal.Signals) -> list[int]:
    """Signal the whole tree (collected first, so re-parenting cannot hide children)."""
    pids = tree_pids(root)
    signal_pids(pids, sig)
    if sig == signal.SIGSTOP:
        signal_pids([p for p in tree_pids(root) if p not in pids], sig)   # forked meanwhile
    return pids


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class TreeMemoryTracker:
    """Approximate peak memory of a tree: max over samples of the summed RSS, and the largest
    single-process high-water mark (VmHWM, reset through /proc/<pid>/clear_refs)."""

    def __init__(self, root: int) -> None:
        self._root = root
        self._peak = 0

    def sample(self) -> int:
        pids = tree_pids(self._root)
        rss = sum(_status_kb(p, "VmRSS") for p in pids) * 1024
        hwm = max((_status_kb(p, "VmHWM") for p in pids), default=0) * 1024
        self._peak = max(self._peak, rss, hwm)
        return self._peak

    def reset(self) -> None:
        for pid in tree_pids(self._root):
            try:
                with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as f:
                    f.write("5")
            except OSError:
                pass
        self._peak = 0
        self.sample()
