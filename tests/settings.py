"""Test settings: the real settings module, with only test doubles swapped in."""

import os
import tempfile

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-not-a-secret")
os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="rideshare-test-var-"))

from config.settings import *  # noqa: F403

# Fast hashing: password strength is not under test.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Rate-limit counts in this process's memory, emptied before every test (tests/conftest.py): the
# suite's requests all come from one address. The count in Redis is tested on its own
# (tests/rideshare/test_rate_limits.py).
CACHES["throttle"] = {  # noqa: F405
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "limits",
}

# Trips complete with their fare captured at once, as before the capture checkpoint existed:
# the tests of that checkpoint turn it on (tests/rideshare/test_capture_checkpoint.py).
RIDESHARE_CAPTURE_WAIT_SECONDS = 0.0
