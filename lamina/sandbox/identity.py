"""The unprivileged identity sandboxed code runs as, and its /etc/passwd and /etc/group lines."""
from __future__ import annotations

import pwd
from dataclasses import dataclass


@dataclass(frozen=True)
class SandboxUser:
    """AWS Lambda's sandbox user is sbx_user1051, uid 993, gid 990; we use the same numbers."""

    uid: int = 993
    gid: int = 990
    name: str = "sbx_user1051"
    home: str = "/tmp"

    def passwd(self) -> str:
        return (f"root:x:0:0:root:/root:/sbin/nologin\n"
                f"{self.name}:x:{self.uid}:{self.gid}::{self.home}:/sbin/nologin\n"
                f"nobody:x:65534:65534:nobody:/:/sbin/nologin\n")

    def group(self) -> str:
        return (f"root:x:0:\n"
                f"{self.name}:x:{self.gid}:\n"
                f"nogroup:x:65534:\n")

    def host_account(self) -> str | None:
        """Name of a host account that already owns this uid (its files would be reachable)."""
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return None
