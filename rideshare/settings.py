"""Settings for every environment, read from environment variables (twelve-factor).

With no variables set, everything runs on the embedded defaults: SQLite, the in-memory channel
layer and a Celery broker on SQLite. The real services (PostgreSQL, Redis, Kafka) are switched on
by setting their URLs. Every variable read here is listed in the README's configuration table;
``tests/test_deploy.py`` keeps the README and docker-compose.yml honest about that.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)

# Runtime files of the embedded defaults (SQLite databases, Celery beat state, collected static).
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# A production secret has no default: a process started without it fails here, at start.
# Only a DEBUG run (the demo, a developer's shell) may fall back to a throwaway key.
if DEBUG:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="insecure-debug-only-key")
else:
    try:
        SECRET_KEY = env.str("DJANGO_SECRET_KEY")
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. It has no default outside DEBUG; "
            "set it, or set DJANGO_DEBUG=true for a local run."
        ) from exc

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    # Installed so its API docs page uses ninja's bundled static files rather than a CDN.
    "ninja",
    "events",
    "rideshare",
    "simulator",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "rideshare.web.devices.DeviceCookieMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "rideshare.urls"
ASGI_APPLICATION = "rideshare.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", 0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the relay or a worker writes.
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = "PRAGMA journal_mode=WAL;"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# Serve straight from the apps' static folders, so the demo needs no collectstatic step.
WHITENOISE_USE_FINDERS = True

# Redis backs the channel layer when REDIS_URL is set; otherwise one web process keeps it in memory.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# The event stream: Kafka, or the embedded durable log on SQLite (same semantics).
EVENT_BUS = env.str("EVENT_BUS", default="embedded")
if EVENT_BUS not in {"embedded", "kafka"}:
    raise ImproperlyConfigured(f"EVENT_BUS must be 'embedded' or 'kafka', not {EVENT_BUS!r}.")
KAFKA_BOOTSTRAP_SERVERS = env.list("KAFKA_BOOTSTRAP_SERVERS", default=["127.0.0.1:9092"])
# Bounds every Kafka wait (bootstrap, request, delivery), so a missing broker fails fast.
KAFKA_TIMEOUT_SECONDS = env.float("KAFKA_TIMEOUT_SECONDS", default=10.0)
EVENT_LOG_PATH = Path(env.str("EVENT_LOG_PATH", default=str(VAR_DIR / "event-log.sqlite3")))
EVENT_TOPIC_PARTITIONS = env.int("EVENT_TOPIC_PARTITIONS", default=3)

# Celery: with no broker server, kombu's SQLAlchemy transport keeps the queue in SQLite.
CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL", default=f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"
)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"ml.tasks.train_*": {"queue": "training"}}
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Every periodic task is declared here, in one place.
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"kafka": {"level": "WARNING"}},
}

if not DEBUG:
    SESSION_COOKIE_HTTPONLY = True
    CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the cookie
    X_FRAME_OPTIONS = "DENY"
