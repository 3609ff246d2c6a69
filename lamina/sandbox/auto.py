"""Composition helper: probe the host once and build the best sandbox it allows."""
from __future__ import annotations

import logging

from lamina.sandbox.base import Sandbox
from lamina.sandbox.bwrap_impl import BwrapSandbox
from lamina.sandbox.plain_impl import PlainSandbox
from lamina.sandbox.probe import HostProbe, probe_host
from lamina.sandbox.zygote_impl import with_zygote

log = logging.getLogger(__name__)

PREFERENCES = ("auto", "bwrap", "plain", "zygote")


def build_sandbox(cgroup_parent: str = "lamina", prefer: str = "auto") -> Sandbox:
    """Probe the host and return a `BwrapSandbox` (or, failing that, a `PlainSandbox`) whose
    `.report` says what is isolated. prefer="bwrap" raises when bubblewrap is unusable.

    With bwrap usable, "auto" wraps it in a `ZygoteSandbox` (Python runtimes forked from warm
    per-interpreter zygotes, lamina/sandbox/zygote_impl.py) when the host allows that (root,
    cgroups, namespaces, detached mounts); its report's `zygote` field says which. "bwrap"
    means bwrap alone, no zygote; "zygote" raises when zygotes are unavailable.

    `cgroup_parent` is relative to each hierarchy root. Leftover `<cgroup_parent>/*` cgroups
    of a crashed earlier run are killed and removed here; ones still started by a live
    process (another Lamina with the same parent) are left alone with a warning.
    """
    if prefer not in PREFERENCES:
        raise ValueError(f"prefer must be one of {PREFERENCES}, not {prefer!r}")
    host = probe_host(cgroup_parent)
    remove_stale_cgroups(host)
    if prefer in ("bwrap", "zygote") or (prefer == "auto" and host.bwrap_mode is not None):
        bwrap = BwrapSandbox(host.report("bwrap"), host.bwrap_config(), host.cgroups)
        sandbox: Sandbox = bwrap if prefer == "bwrap" else with_zygote(bwrap, host.cgroups,
                                                                       required=prefer == "zygote")
    else:
        sandbox = PlainSandbox(host.report("plain"), host.cgroups,
                               user=host.user if host.is_root else None)
    for warning in sandbox.report.warnings:
        log.warning("sandbox (%s): %s", sandbox.report.backend, warning)
    return sandbox


def remove_stale_cgroups(host: HostProbe) -> list[str]:
    if host.cgroups is None:
        return []
    removed = host.cgroups.remove_stale()
    if removed:
        log.warning("removed %d stale sandbox cgroup(s) from a previous run: %s",
                    len(removed), ", ".join(removed))
    return removed
