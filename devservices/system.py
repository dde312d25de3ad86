"""Debian packages the real services need, installed with apt-get when missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from glob import glob

from devservices.base import ServiceError, log

# binary (or glob of a path) -> Debian package that provides it
REQUIRED: dict[str, str] = {
    "redis-server": "redis-server",
    "/usr/lib/postgresql/*/bin/initdb": "postgresql-15",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
    "java": "openjdk-17-jre-headless",
    "mvn": "maven",
}


def _present(binary: str) -> bool:
    if binary.startswith("/"):
        return bool(glob(binary))
    return shutil.which(binary) is not None


def missing_packages() -> list[str]:
    """Return the Debian packages whose binaries are absent, in a stable order."""
    return sorted({package for binary, package in REQUIRED.items() if not _present(binary)})


def ensure_packages() -> None:
    """Install every missing package with apt-get (needs root); do nothing when all are there."""
    missing = missing_packages()
    if not missing:
        log("system packages: all present")
        return
    if os.geteuid() != 0:
        raise ServiceError(
            "system packages", f"missing {' '.join(missing)} and not root: apt-get install them"
        )
    log(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", *missing],
    ):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ServiceError(
                "system packages", f"{' '.join(argv)} failed:\n{result.stderr[-2000:]}"
            )
    still = missing_packages()
    if still:
        raise ServiceError("system packages", f"still missing after apt-get: {' '.join(still)}")
