"""Process isolation: run an argv in an isolated, resource-limited process tree.

Entry point: `build_sandbox()` (lamina.sandbox.auto). Contract: lamina.sandbox.base.
"""
from __future__ import annotations

from lamina.sandbox.auto import build_sandbox
from lamina.sandbox.base import Bind, IsolationReport, Sandbox, SandboxProcess, SandboxSpec
from lamina.sandbox.bwrap_impl import BwrapConfig, BwrapSandbox
from lamina.sandbox.identity import SandboxUser
from lamina.sandbox.plain_impl import PlainSandbox
from lamina.sandbox.probe import probe

__all__ = [
    "Bind", "BwrapConfig", "BwrapSandbox", "IsolationReport", "PlainSandbox", "Sandbox",
    "SandboxProcess", "SandboxSpec", "SandboxUser", "build_sandbox", "probe",
]
