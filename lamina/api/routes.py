"""THE table of operations: method and path exactly as botocore builds them (checked by a test)."""
from __future__ import annotations

from dataclasses import dataclass

from lamina import limits
from lamina.api.call import Handler
from lamina.api.operations import account, admin, functions, invoke, layers, tags, versions


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
    signed: bool = True               # False only for capability URLs (a code Location names a sha256)

    @property
    def label(self) -> str:
        return self.size_label or self.name


_F = "/2015-03-31/functions"
_L = "/2018-10-31/layers"

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
    Operation("PublishVersion", "POST", _F + "/{FunctionName}/versions", versions.publish_version),
    Operation("ListVersionsByFunction", "GET", _F + "/{FunctionName}/versions", versions.list_versions),
    Operation("CreateAlias", "POST", _F + "/{FunctionName}/aliases", versions.create_alias),
    Operation("ListAliases", "GET", _F + "/{FunctionName}/aliases", versions.list_aliases),
    Operation("GetAlias", "GET", _F + "/{FunctionName}/aliases/{Name}", versions.get_alias),
    Operation("UpdateAlias", "PUT", _F + "/{FunctionName}/aliases/{Name}", versions.update_alias),
    Operation("DeleteAlias", "DELETE", _F + "/{FunctionName}/aliases/{Name}", versions.delete_alias),
    Operation("PublishLayerVersion", "POST", _L + "/{LayerName}/versions", layers.publish_layer_version,
              limits.CREATE_REQUEST_MAX_BYTES),
    Operation("ListLayers", "GET", _L, layers.list_layers),
    Operation("GetLayerVersionByArn", "GET", _L, layers.get_layer_version_by_arn,
              query_selector="find=LayerVersion"),
    Operation("ListLayerVersions", "GET", _L + "/{LayerName}/versions", layers.list_layer_versions),
    Operation("GetLayerVersion", "GET", _L + "/{LayerName}/versions/{VersionNumber}", layers.get_layer_version),
    Operation("DeleteLayerVersion", "DELETE", _L + "/{LayerName}/versions/{VersionNumber}",
              layers.delete_layer_version),
    Operation("AddLayerVersionPermission", "POST", _L + "/{LayerName}/versions/{VersionNumber}/policy",
              layers.add_layer_version_permission),
    Operation("GetLayerVersionPolicy", "GET", _L + "/{LayerName}/versions/{VersionNumber}/policy",
              layers.get_layer_version_policy),
    Operation("RemoveLayerVersionPermission", "DELETE",
              _L + "/{LayerName}/versions/{VersionNumber}/policy/{StatementId}",
              layers.remove_layer_version_permission),
    Operation("TagResource", "POST", "/2017-03-31/tags/{Resource}", tags.tag_resource),
    Operation("UntagResource", "DELETE", "/2017-03-31/tags/{Resource}", tags.untag_resource),
    Operation("ListTags", "GET", "/2017-03-31/tags/{Resource}", tags.list_tags),
    Operation("GetAccountSettings", "GET", "/2016-08-19/account-settings", account.get_account_settings),
    Operation("LaminaListKeys", "GET", "/_lamina/v1/keys", admin.list_keys, aws=False),
    Operation("LaminaCreateKey", "POST", "/_lamina/v1/keys", admin.create_key, aws=False),
    Operation("LaminaDeleteKey", "DELETE", "/_lamina/v1/keys/{AccessKeyId}", admin.delete_key, aws=False),
    Operation("LaminaDownloadCode", "GET", "/_lamina/v1/code/{Digest}", admin.download_code, aws=False,
              signed=False),
    Operation("LaminaHost", "GET", "/_lamina/v1/host", admin.host_report, aws=False),
)
