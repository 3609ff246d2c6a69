"""GetAccountSettings: the account's limits and what it uses."""
from __future__ import annotations

from starlette.responses import Response

from lamina import limits
from lamina.api.call import Call, json_reply


async def get_account_settings(call: Call) -> Response:
    versions = call.services.functions.list_all_versions(call.scope)
    total_code = sum(v.config.code.size for v in versions)
    concurrency = call.services.settings_account_concurrency
    return json_reply({
        "AccountLimit": {
            "TotalCodeSize": limits.ACCOUNT_TOTAL_CODE_BYTES, "CodeSizeUnzipped": limits.UNZIPPED_MAX_BYTES,
            "CodeSizeZipped": limits.ZIPPED_MAX_BYTES, "ConcurrentExecutions": concurrency,
            "UnreservedConcurrentExecutions": concurrency,
        },
        "AccountUsage": {"TotalCodeSize": total_code,
                         "FunctionCount": len(call.services.functions.list_latest(call.scope))},
    })
