"""The spec as the zygote child's mount operations: `zygote_plan` translates the bwrap options
`bwrap_options` builds into them, cloning every bind source as a detached mount tree
(`MountTrees`) whose fd travels in the request's `FdList`. An option without an equivalent
raises `NotServable`: bwrap then runs the spec.
"""
from __future__ import annotations

import ctypes
import os
from typing import Any

from lamina.sandbox.zygote_child import DEV_NODES, MAX_FDS


class NotServable(ValueError):
    """The spec needs something the zygote does not reproduce: bwrap runs it."""


SYS_OPEN_TREE, SYS_MOUNT_SETATTR = 428, 442          # the same on every architecture
OPEN_TREE_CLONE, AT_FDCWD, AT_EMPTY_PATH, AT_RECURSIVE = 1, -100, 0x1000, 0x8000
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 0x1, 0x2, 0x4
MS_SLAVE = 1 << 19


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


class MountTrees:
    """Clones of host paths as detached mount trees (open_tree(OPEN_TREE_CLONE)), the only
    kind of mount another mount namespace may attach: a sandbox child gets these fds and
    move_mount()s them into its root. Flags are set here, recursively, the way bwrap remounts
    a bind and its submounts (existing flags kept); propagation becomes slave, as in bwrap."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.syscall.restype = ctypes.c_long

    def clone(self, path: str, attr_set: int, recursive: bool = True) -> int:
        rec = AT_RECURSIVE if recursive else 0
        fd = self._libc.syscall(ctypes.c_long(SYS_OPEN_TREE), ctypes.c_int(AT_FDCWD), ctypes.c_char_p(path.encode()),
                                ctypes.c_uint(OPEN_TREE_CLONE | os.O_CLOEXEC | rec))
        if fd < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"open_tree {path}: {os.strerror(errno)}")
        attr = _MountAttr(attr_set, 0, MS_SLAVE, 0)
        if self._libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(fd), ctypes.c_char_p(b""),
                              ctypes.c_uint(AT_EMPTY_PATH | rec), ctypes.byref(attr),
                              ctypes.c_size_t(ctypes.sizeof(attr))) < 0:
            errno = ctypes.get_errno()
            os.close(fd)
            raise OSError(errno, f"mount_setattr {path}: {os.strerror(errno)}")
        return int(fd)

    def works(self) -> str | None:
        try:
            os.close(self.clone("/usr", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, recursive=False))
        except OSError as e:
            return f"detached mounts unsupported ({e})"
        return None


class FdList:
    """The fds of one fork request, referred to by index; closes the ones it opened."""

    def __init__(self) -> None:
        self.fds: list[int] = []
        self._owned: list[int] = []

    def add(self, fd: int, *, owned: bool = True) -> int:
        self.fds.append(fd)
        if owned:
            self._owned.append(fd)
        return len(self.fds) - 1

    def own(self, fd: int) -> None:
        """Close `fd` with the others (whether or not it is in the list)."""
        self._owned.append(fd)

    def close(self) -> None:
        for fd in self._owned:
            try:
                os.close(fd)
            except OSError:
                pass
        self._owned.clear()


def zygote_plan(options: list[str], fds: FdList, trees: MountTrees) -> dict[str, Any]:
    """Translate bwrap options (as `bwrap_options` builds them, setpriv mode) into the child's
    mount operations, cloning every bind source as a detached mount tree in `fds`."""
    ops: list[list[Any]] = []
    plan: dict[str, Any] = {"hostname": "sandbox", "chdir": "/", "env": {}, "cgroupns": None, "ops": ops}
    unshared: set[str] = set()
    perms: int | None = None
    size: int | None = None
    args = iter(options)

    def arg() -> str:
        try:
            return next(args)
        except StopIteration:
            raise NotServable("bwrap option without its argument") from None

    for opt in args:
        if opt in ("--unshare-pid", "--unshare-ipc", "--unshare-uts"):
            unshared.add(opt.removeprefix("--unshare-"))
        elif opt in ("--unshare-cgroup-try", "--unshare-cgroup"):
            plan["cgroupns"] = "try" if opt.endswith("-try") else "require"
        elif opt == "--hostname":
            plan["hostname"] = arg()
        elif opt in ("--die-with-parent", "--new-session"):
            pass                                   # what the child always does
        elif opt in ("--cap-drop", "--cap-add"):
            arg()                                  # the child ends with none, as setpriv leaves it
        elif opt == "--perms":
            perms = int(arg(), 8)
            continue
        elif opt == "--size":
            size = int(arg())
            continue
        elif opt == "--dir":
            ops.append(["dir", arg(), 0o755 if perms is None else perms])
        elif opt in ("--ro-bind", "--bind"):
            source, dest = arg(), arg()
            flags = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (MOUNT_ATTR_RDONLY if opt == "--ro-bind" else 0)
            ops.append(["tree", dest, fds.add(trees.clone(source, flags)), os.path.isdir(source)])
        elif opt == "--symlink":
            target, dest = arg(), arg()
            ops.append(["symlink", dest, target])
        elif opt == "--ro-bind-data":
            fd, dest = int(arg()), arg()
            ops.append(["data", dest, fds.add(fd, owned=False), 0o600 if perms is None else perms])
        elif opt == "--proc":
            ops.append(["proc", arg()])
        elif opt == "--dev":
            nodes = {n: fds.add(trees.clone(f"/dev/{n}", MOUNT_ATTR_NOSUID, recursive=False))
                     for n in DEV_NODES if os.path.exists(f"/dev/{n}")}
            ops.append(["dev", arg(), nodes])
        elif opt == "--tmpfs":
            ops.append(["tmpfs", arg(), 0o755 if perms is None else perms, size])
            size = None
        elif opt == "--remount-ro":
            ops.append(["remount-ro", arg()])
        elif opt == "--chdir":
            plan["chdir"] = arg()
        elif opt == "--clearenv":
            plan["env"] = {}
        elif opt == "--setenv":
            key, value = arg(), arg()
            plan["env"][key] = value
        elif opt == "--unsetenv":
            plan["env"].pop(arg(), None)
        else:
            raise NotServable(f"bwrap option {opt} has no zygote equivalent")
        if perms is not None and opt not in ("--dir", "--ro-bind-data", "--tmpfs"):
            raise NotServable(f"--perms before {opt}")
        perms = None
    if unshared != {"pid", "ipc", "uts"}:
        raise NotServable(f"namespaces {sorted(unshared)} differ from pid, ipc, uts")
    if size is not None or perms is not None:
        raise NotServable("dangling --size or --perms")
    if len(fds.fds) > MAX_FDS:
        raise NotServable("more than 253 fds")
    return plan
