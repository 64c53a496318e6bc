"""TCP helpers for starting local servers on known or free ports."""

from __future__ import annotations

import socket
import subprocess
import time

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0", ""}


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS may hand it to someone else later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(
    host: str,
    port: int,
    timeout: float = 30.0,
    *,
    process: subprocess.Popen[bytes] | None = None,
    interval: float = 0.05,
) -> None:
    """Block until host:port accepts connections.

    Raises TimeoutError after `timeout` seconds, or RuntimeError as soon as `process`
    (the server expected to open the port) has exited.
    """
    deadline = time.monotonic() + timeout
    while True:
        if port_open(host, port, timeout=min(0.5, timeout)):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process {process.pid} exited with code {process.returncode} "
                f"before {host}:{port} opened"
            )
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")
        time.sleep(interval)


def split_address(address: str, default_port: int = 7233) -> tuple[str, int]:
    """`host:port` into its parts (`[::1]:7233` too); the host defaults to 127.0.0.1."""
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = address, str(default_port)
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def is_local_host(host: str) -> bool:
    return host in LOCAL_HOSTS or host.startswith("127.")
