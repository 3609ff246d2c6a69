"""THE table of operations: method and path exactly as botocore builds them (checked by a test)."""
from __future__ import annotations

from dataclasses import dataclass

from lamina import limits
from lamina.api.call import Handler
from lamina.api.operations import account, admin, functions, invoke, tags


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    path: str                         # botocore requestUri without its query part
    handler: Handler
    max_body: int = 1_048_576
    query_selector: str | None = None  # e.g. "find=LayerVersion" picks between operations on one path
    aws: bool = True                  # False for Lamina's own admin operations
    size_label: str = ""              # the name AWS uses in its too-large message

    @property
    def label(self) -> str:
        return self.size_label or self.name


_F = "/2015-03-31/functions"

OPERATIONS: tuple[Operation, ...] = (
    Operation("CreateFunction", "POST", _F, functions.create_function, limits.CREATE_REQUEST_MAX_BYTES),
    Operation("ListFunctions", "GET", _F, functions.list_functions),
    Operation("GetFunction", "GET", _F + "/{FunctionName}", functions.get_function),
    Operation("DeleteFunction", "DELETE", _F + "/{FunctionName}", functions.delete_function),
    Operation("GetFunctionConfiguration", "GET", _F + "/{FunctionName}/configuration",
              functions.get_function_configuration),
    Operation("UpdateFunctionConfiguration", "PUT", _F + "/{FunctionName}/configuration",
              functions.update_function_configuration),
    Operation("UpdateFunctionCode", "PUT", _F + "/{FunctionName}/code", functions.update_function_code,
              limits.CREATE_REQUEST_MAX_BYTES),
    Operation("Invoke", "POST", _F + "/{FunctionName}/invocations", invoke.invoke, limits.SYNC_PAYLOAD_MAX_BYTES,
              size_label="InvokeFunction"),
    Operation("TagResource", "POST", "/2017-03-31/tags/{Resource}", tags.tag_resource),
    Operation("UntagResource", "DELETE", "/2017-03-31/tags/{Resource}", tags.untag_resource),
    Operation("ListTags", "GET", "/2017-03-31/tags/{Resource}", tags.list_tags),
    Operation("GetAccountSettings", "GET", "/2016-08-19/account-settings", account.get_account_settings),
    Operation("LaminaListKeys", "GET", "/_lamina/v1/keys", admin.list_keys, aws=False),
    Operation("LaminaCreateKey", "POST", "/_lamina/v1/keys", admin.create_key, aws=False),
    Operation("LaminaDeleteKey", "DELETE", "/_lamina/v1/keys/{AccessKeyId}", admin.delete_key, aws=False),
    Operation("LaminaHost", "GET", "/_lamina/v1/host", admin.host_report, aws=False),
)
