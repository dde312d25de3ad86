"""Debian's Chromium for browser tests, driven by Playwright (it cannot download browsers here)."""

from __future__ import annotations

import os
from pathlib import Path

from devservices.base import ServiceError

NAME = "chromium"
EXECUTABLE = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))

# This machine has no network beyond package registries: keep Chromium from phoning home,
# whose refused connections otherwise slow every start.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def executable() -> Path:
    """Return the Chromium binary, or fail naming the package to install."""
    if not EXECUTABLE.exists():
        raise ServiceError(
            NAME, f"{EXECUTABLE} not found: apt-get install chromium chromium-driver"
        )
    return EXECUTABLE


def launch_options() -> dict:
    """Return keyword arguments for Playwright's ``chromium.launch``."""
    return {"executable_path": str(executable()), "headless": True, "args": LAUNCH_ARGS}
