import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_settings(**env: str) -> subprocess.CompletedProcess:
    """Import the real settings module in a fresh interpreter with exactly ``env`` set."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "EVENT_BUS"))}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('settings ok')"],
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_start_without_secret_key_fails_naming_the_variable(tmp_path):
    result = load_settings(VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr
    assert "settings ok" not in result.stdout


def test_production_start_with_secret_key_succeeds(tmp_path):
    result = load_settings(VAR_DIR=str(tmp_path), DJANGO_SECRET_KEY="x" * 50)
    assert result.returncode == 0, result.stderr


def test_debug_start_needs_no_secret(tmp_path):
    result = load_settings(VAR_DIR=str(tmp_path), DJANGO_DEBUG="true")
    assert result.returncode == 0, result.stderr


def test_unknown_event_bus_is_refused(tmp_path):
    result = load_settings(VAR_DIR=str(tmp_path), DJANGO_DEBUG="true", EVENT_BUS="rabbit")
    assert result.returncode != 0
    assert "EVENT_BUS must be 'embedded' or 'kafka', not 'rabbit'" in result.stderr
