"""AWS wire shapes: Lamina values in, AWS JSON out. The only place AWS field names are written."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from lamina.control.functions import ConfigInput
from lamina.model.function import FunctionVersion


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class EnvironmentIn(_Wire):
    Variables: dict[str, str] | None = None


class EphemeralIn(_Wire):
    Size: int


class TracingIn(_Wire):
    Mode: str | None = None


class TenancyIn(_Wire):
    TenantIsolationMode: str | None = None


class CodeIn(_Wire):
    ZipFile: str | None = None
    S3Bucket: str | None = None
    S3Key: str | None = None
    S3ObjectVersion: str | None = None
    ImageUri: str | None = None


class ConfigurationIn(_Wire):
    Runtime: str | None = None
    Role: str | None = None
    Handler: str | None = None
    Description: str | None = None
    Timeout: int | None = None
    MemorySize: int | None = None
    EphemeralStorage: EphemeralIn | None = None
    Environment: EnvironmentIn | None = None
    Architectures: list[str] | None = None
    Layers: list[str] | None = None
    TracingConfig: TracingIn | None = None
    TenancyConfig: TenancyIn | None = None
    RevisionId: str | None = None

    def to_input(self) -> ConfigInput:
        env = None if self.Environment is None else (self.Environment.Variables or {})
        return ConfigInput(
            runtime=self.Runtime, role=self.Role, handler=self.Handler, description=self.Description,
            timeout_s=self.Timeout, memory_mb=self.MemorySize,
            ephemeral_mb=self.EphemeralStorage.Size if self.EphemeralStorage else None, environment=env,
            architectures=self.Architectures, layers=self.Layers,
            tracing_mode=self.TracingConfig.Mode if self.TracingConfig else None,
            tenancy_mode=self.TenancyConfig.TenantIsolationMode if self.TenancyConfig else None)


class CreateFunctionIn(ConfigurationIn):
    FunctionName: str
    Code: CodeIn
    PackageType: str | None = None
    Publish: bool = False
    Tags: dict[str, str] | None = None


class UpdateCodeIn(CodeIn):
    Architectures: list[str] | None = None
    Publish: bool = False
    RevisionId: str | None = None
    DryRun: bool = False


def function_configuration(v: FunctionVersion, arn: str) -> dict[str, Any]:
    c = v.config
    out: dict[str, Any] = {
        "FunctionName": v.name, "FunctionArn": arn, "Runtime": c.runtime, "Role": c.role, "Handler": c.handler,
        "CodeSize": c.code.size, "Description": c.description, "Timeout": c.timeout_s, "MemorySize": c.memory_mb,
        "LastModified": v.last_modified, "CodeSha256": c.code.sha256_b64, "Version": v.version,
        "TracingConfig": {"Mode": c.tracing_mode}, "RevisionId": v.revision_id, "PackageType": "Zip",
        "Architectures": list(c.architectures), "EphemeralStorage": {"Size": c.ephemeral_mb},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": {"LogFormat": c.log_format, "LogGroup": c.log_group or f"/aws/lambda/{v.name}"},
        "State": v.state.value,
    }
    if c.runtime:
        out["RuntimeVersionConfig"] = {"RuntimeVersionArn":
                                       f"arn:aws:lambda:{v.region}::runtime:lamina-{c.runtime}"}
    if c.environment is not None:
        out["Environment"] = {"Variables": dict(c.environment)}
    if c.layers:
        out["Layers"] = [{"Arn": layer.arn, "CodeSize": layer.code_size} for layer in c.layers]
    if c.tenancy_mode:
        out["TenancyConfig"] = {"TenantIsolationMode": c.tenancy_mode}
    if v.state_reason:
        out["StateReason"] = v.state_reason
    if v.state_reason_code:
        out["StateReasonCode"] = v.state_reason_code
    if v.last_update_status is not None:
        out["LastUpdateStatus"] = v.last_update_status.value
        if v.last_update_status.value == "InProgress":
            out["LastUpdateStatusReason"] = "The function is being created."
            out["LastUpdateStatusReasonCode"] = "Creating"
    return out

