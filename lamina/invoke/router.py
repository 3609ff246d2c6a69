"""The entry to the data plane: resolve the version, take a concurrency lease, place, run."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from lamina.arn import FunctionRef
from lamina.control.scope import Scope
from lamina.control.versions import VersionService
from lamina.errors import InvalidRequestContentException, ResourceConflictException
from lamina.invoke.environment import Environment, Fault, InitReport
from lamina.invoke.launch import Launch, Launcher, LaunchError
from lamina.invoke.placement import Placement
from lamina.invoke.pool import PoolKey
from lamina.invoke.sync import InvocationResult, failed_init_result, invocation_result
from lamina.invoke.throttle import Throttle
from lamina.model.function import FunctionVersion, State
from lamina.runtime_api.session import Invocation
from lamina.sandbox.base import Sandbox
from lamina.store.base import FunctionKey
from lamina.telemetry import invoke_log


@dataclass(frozen=True)
class InvokeRequest:
    scope: Scope
    ref: FunctionRef
    qualifier: str | None
    payload: bytes
    request_id: str
    client_context: str | None = None
    tenant_id: str | None = None
    trace_id: str | None = None


def check_payload(payload: bytes) -> bytes:
    if not payload.strip():
        return b"{}"
    try:
        json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidRequestContentException(
            f"Could not parse request body into json: Could not parse payload into json: {e}") from e
    return payload


class Invoker:
    def __init__(self, versions: VersionService, throttle: Throttle, placement: Placement, launcher: Launcher,
                 sandbox: Sandbox) -> None:
        self._versions = versions
        self._throttle = throttle
        self._placement = placement
        self._launcher = launcher
        self._sandbox = sandbox
        self._launches: dict[tuple[str, str, str, str, str], Launch] = {}

    def resolve(self, req: InvokeRequest) -> tuple[FunctionVersion, str]:
        """The version that will run and the ARN the function sees as invoked_function_arn."""
        version = self._versions.pick_for_invoke(req.scope, req.ref, req.qualifier)
        if version.state is not State.ACTIVE:
            raise ResourceConflictException(
                "The operation cannot be performed at this time. The function is currently in the following "
                f"state: {version.state.value}")
        return version, req.scope.arn(req.ref.name, req.qualifier)

    async def invoke(self, req: InvokeRequest) -> InvocationResult:
        version, invoked_arn = self.resolve(req)
        payload = check_payload(req.payload)
        inv = Invocation(req.request_id, payload, int(time.time() * 1000 + version.config.timeout_s * 1000),
                         invoked_arn, req.trace_id, req.client_context, None, req.tenant_id)
        with self._throttle.lease(req.scope.account):
            return await self._run(version, inv, req.tenant_id)

    def _launch(self, v: FunctionVersion) -> Launch:
        """A version's sandbox spec; computed once per revision, since warm invokes ask every time."""
        key = (v.account, v.region, v.name, v.version, v.revision_id)
        launch = self._launches.get(key)
        if launch is None:
            if len(self._launches) > 4096:
                self._launches.clear()
            launch = self._launches[key] = self._launcher.launch(v)
        return launch

    async def _run(self, v: FunctionVersion, inv: Invocation, tenant: str | None) -> InvocationResult:
        try:
            launch = self._launch(v)
        except LaunchError as e:
            return self._launch_failure(v, inv, e)
        # Tenant isolation mode: one tenant per environment; otherwise tenants share environments.
        per_tenant = v.config.tenancy_mode == "PER_TENANT"
        key = PoolKey(v.account, v.region, v.name, v.version, v.revision_id, tenant if per_tenant else None)

        async def factory() -> tuple[Environment, InitReport]:
            env = Environment(self._sandbox, launch.spec, v.config.memory_mb, launch.cpu_millicores)
            return env, await env.start()

        lease = await self._placement.acquire(key, factory)
        try:
            if lease.init is not None and lease.init.failure is not None:
                return failed_init_result(inv, v.version, v.config.memory_mb, lease.init, launch)
            # A fresh deadline: a cold start's init does not eat into the handler's timeout.
            inv = Invocation(inv.request_id, inv.payload, int(time.time() * 1000 + v.config.timeout_s * 1000),
                             inv.invoked_function_arn, inv.trace_id, inv.client_context, None, inv.tenant_id)
            report = await lease.env.invoke(inv, v.config.timeout_s)
            return invocation_result(inv, v.version, v.config.memory_mb, report, lease.init, launch)
        finally:
            await self._placement.release(lease.lease_id)

    @staticmethod
    def _launch_failure(v: FunctionVersion, inv: Invocation, e: LaunchError) -> InvocationResult:
        payload = Fault(e.error_type, f"RequestId: {inv.request_id} Error: {e}").payload()
        report = invoke_log.report_line(inv.request_id, 0.0, v.config.memory_mb, 0, None)
        log = invoke_log.execution_log(inv.request_id, v.version, f"{e}\n".encode(), report)
        return InvocationResult(inv.request_id, payload, v.version, "Unhandled", log, 0.0, True)

    async def forget(self, key: FunctionKey, qualifier: str | None) -> None:
        await self._placement.forget((key.account, key.region, key.name), qualifier)
