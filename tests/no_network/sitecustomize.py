"""Test helper: no network for a Python process, loaded by putting this folder on PYTHONPATH.

With USNB_BLOCK_NETWORK set, every connection or name lookup beyond this machine raises OSError;
loopback addresses and Unix sockets stay open (a Jupyter kernel talks to papermill over them).
Each blocked attempt is appended to $USNB_NETWORK_LOG, so one that the caller catches (a download
with a fallback) is still seen by the test, and so is the guard's installation in each process.
"""
import ipaddress
import os
import socket
import sys

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
_create_connection, _getaddrinfo = socket.create_connection, socket.getaddrinfo


def _log(line: str) -> None:
    if os.environ.get("USNB_NETWORK_LOG"):
        with open(os.environ["USNB_NETWORK_LOG"], "a") as f:
            f.write(f"{os.getpid()} {line}\n")


def _local(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:  # any other host name
        return False


def _check(family, host, what) -> None:
    if family in (socket.AF_INET, socket.AF_INET6) and not _local(host):
        _log(f"blocked {what}")
        raise OSError(f"network blocked by the usnb tests: {what}")


def connect(self, address):
    _check(self.family, address[0] if isinstance(address, tuple) else None, f"connect {address}")
    return _connect(self, address)


def connect_ex(self, address):
    _check(self.family, address[0] if isinstance(address, tuple) else None, f"connect {address}")
    return _connect_ex(self, address)


def create_connection(address, *args, **kwargs):
    _check(socket.AF_INET, address[0], f"create_connection {address}")
    return _create_connection(address, *args, **kwargs)


def getaddrinfo(host, *args, **kwargs):
    _check(socket.AF_INET, host, f"getaddrinfo {host}")
    return _getaddrinfo(host, *args, **kwargs)


GUARDS = {"connect": connect, "connect_ex": connect_ex}  # methods of socket.socket
FUNCTIONS = {"create_connection": create_connection, "getaddrinfo": getaddrinfo}  # functions of socket


def install() -> None:
    for name, guard in GUARDS.items():
        setattr(socket.socket, name, guard)
    for name, guard in FUNCTIONS.items():
        setattr(socket, name, guard)
    _log("guard installed in " + " ".join(sys.orig_argv))


if os.environ.get("USNB_BLOCK_NETWORK"):
    install()
