"""Production settings from the environment: Django's deployment checklist passes with them, and
each of them is what makes it pass."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def deploy_check(**overrides: str) -> subprocess.CompletedProcess:
    # A production process's environment: none of the test run's DJANGO_* variables (the
    # suite's fixtures set DJANGO_ALLOW_ASYNC_UNSAFE, which the checklist refuses).
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="fraud.example.com",
        **overrides,
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
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
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.SECURE_PROXY_SSL_HEADER)",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_DEBUG": "true",
            "DJANGO_TLS_PROXY": "true",
        },
        capture_output=True,
        text=True,
        timeout=120,
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
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_DEBUG": "true",
            "DJANGO_ADMIN_PATH": "/ops-7f3a/",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.split() == ["/ops-7f3a/", "gone", "from", "/admin/"], result.stderr
