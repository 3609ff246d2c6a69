"""Where a call acts: the caller's account and region, and the keys and ARNs they imply."""
from __future__ import annotations

from dataclasses import dataclass

from lamina.arn import function_arn
from lamina.store.base import FunctionKey


@dataclass(frozen=True)
class Scope:
    account: str
    region: str

    def key(self, name: str) -> FunctionKey:
        return FunctionKey(self.account, self.region, name)

    def arn(self, name: str, qualifier: str | None = None) -> str:
        return function_arn(self.region, self.account, name, qualifier)
