import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def with_settings(
    args: list[str], *, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess:
    """Run ``python <args>`` in a fresh interpreter on the real settings module with exactly
    ``env`` set (none of the test run's ``DJANGO_*`` variables: the suite's fixtures set
    ``DJANGO_ALLOW_ASYNC_UNSAFE``, which the deployment checklist refuses)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "EVENT_BUS"))}
    return subprocess.run(
        [sys.executable, *args],
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def load_settings(**env: str) -> subprocess.CompletedProcess:
    """Import the real settings module in a fresh interpreter with exactly ``env`` set."""
    return with_settings(["-c", "import django; django.setup(); print('settings ok')"], **env)


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


# Production settings from the environment: Django's deployment checklist passes with them,
# and each of them is what makes it pass.


def deploy_check(**overrides: str) -> subprocess.CompletedProcess:
    return with_settings(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        timeout=120,
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="fraud.example.com",
        **overrides,
    )


def test_the_deployment_checklist_passes_with_https_on():
    result = deploy_check(DJANGO_HTTPS="true")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("overrides", "warning"),
    [
        ({"DJANGO_HTTPS": "false"}, "security.W008"),  # no redirect to HTTPS
        ({"DJANGO_HTTPS": "true", "DJANGO_HSTS_SECONDS": "0"}, "security.W004"),
        ({"DJANGO_HTTPS": "true", "DJANGO_HSTS_INCLUDE_SUBDOMAINS": "false"}, "security.W005"),
    ],
)
def test_each_https_setting_is_what_the_checklist_asks_for(overrides, warning):
    result = deploy_check(**overrides)
    assert result.returncode != 0
    assert warning in result.stdout + result.stderr


def test_a_proxy_is_trusted_for_the_scheme_only_when_asked(settings):
    # The test settings run without it: a forged X-Forwarded-Proto does not make HTTPS.
    assert getattr(settings, "SECURE_PROXY_SSL_HEADER", None) is None
    result = with_settings(
        [
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.SECURE_PROXY_SSL_HEADER)",
        ],
        timeout=120,
        DJANGO_DEBUG="true",
        DJANGO_TLS_PROXY="true",
    )
    assert result.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https')", result.stderr


def test_the_admin_moves_to_the_path_it_is_given():
    script = (
        "import django; django.setup(); from django.urls import resolve, reverse; "
        "from django.urls.exceptions import Resolver404\n"
        "print(reverse('admin:index'))\n"
        "try:\n    resolve('/admin/'); print('still at /admin/')\n"
        "except Resolver404:\n    print('gone from /admin/')"
    )
    result = with_settings(
        ["-c", script], timeout=120, DJANGO_DEBUG="true", DJANGO_ADMIN_PATH="/ops-7f3a/"
    )
    assert result.stdout.split() == ["/ops-7f3a/", "gone", "from", "/admin/"], result.stderr
