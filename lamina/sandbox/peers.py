"""Which processes own a loopback TCP connection: lets a server tell its sandbox's calls from others'.

Sandboxes share the host's network namespace, so any of them can connect to any loopback port. A server
that must answer only one sandbox looks up the connecting socket in /proc/net/tcp and checks that one of
the sandbox's processes holds it.
"""
from __future__ import annotations

import os
from typing import Iterable


def _hex_endpoint(host: str, port: int) -> str:
    """/proc/net/tcp spells 127.0.0.1:9001 as 0100007F:2329 (address in host byte order)."""
    packed = bytes(int(part) for part in host.split("."))
    return f"{int.from_bytes(packed, 'little'):08X}:{port:04X}"


def socket_inode(peer: tuple[str, int], local: tuple[str, int]) -> int | None:
    """The inode of the client-side socket of the connection peer -> local, if it is IPv4 TCP."""
    want_local, want_remote = _hex_endpoint(*peer), _hex_endpoint(*local)
    try:
        with open("/proc/net/tcp", "rb") as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[1].decode() == want_local and fields[2].decode() == want_remote:
                    return int(fields[9])
    except (OSError, ValueError, StopIteration, IndexError):
        return None
    return None


def holds_socket(pids: Iterable[int], inode: int) -> bool:
    target = f"socket:[{inode}]"
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        for name in names:
            try:
                if os.readlink(f"{fd_dir}/{name}") == target:
                    return True
            except OSError:
                continue
    return False


def connection_owned_by(pids: Iterable[int], peer: tuple[str, int], local: tuple[str, int]) -> bool:
    inode = socket_inode(peer, local)
    return inode is not None and holds_socket(pids, inode)
