"""Settings for every environment, read from environment variables (twelve-factor).

With no variables set, everything runs on the embedded defaults: SQLite, the in-memory channel
layer and a Celery broker on SQLite. The real services (PostgreSQL, Redis, Kafka) are switched on
by setting their URLs. Every variable read here is listed in the README's configuration table;
``tests/test_deploy.py`` keeps the README and docker-compose.yml honest about that.
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
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

# Served over HTTPS (a production deployment): every plain-HTTP request is redirected, browsers
# are told to keep to HTTPS (HSTS) and cookies travel only over it; ``manage.py check
# --deploy`` passes with it (tests/config/test_settings.py). Opt-in, because `make run`, the
# local docker-compose stack, the tests and the benchmarks serve plain HTTP without DEBUG.
HTTPS = env.bool("DJANGO_HTTPS", default=False)
if HTTPS:
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
    # Submitting the domain to the browsers' preload lists is the operator's commitment, hard to
    # take back: asked for, never assumed (its deploy check is silenced until then).
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=False)
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
# Behind a proxy that terminates TLS: the scheme it forwards says whether a request was HTTPS.
# Only when the proxy sets the header on every request and strips a client's own.
TLS_PROXY = env.bool("DJANGO_TLS_PROXY", default=False)
if TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# A client's address for the rate limits: behind the proxy, the one it appends to
# X-Forwarded-For; else the connection's (a client's own X-Forwarded-For is never believed).
NINJA_NUM_PROXIES = 1 if TLS_PROXY else 0

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
    "axes",
    "csp",
    # Installed so its API docs page uses ninja's bundled static files rather than a CDN.
    "ninja",
    "events",
    "features",
    "fraud",
    "ml",
    "rideshare",
    "simulator",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "rideshare.web.devices.DeviceCookieMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: it answers a locked-out login with 429.
    "axes.middleware.AxesMiddleware",
]

# Content-Security-Policy (django-csp) on every response: scripts, styles, images, fonts and
# connections (websockets included) from this origin only, nothing inline (the pages' scripts
# and the vendored Leaflet, Chart.js and Swagger UI are files under /static/; data: images are
# Leaflet's and Swagger's icons), no plugins, no framing, forms posted here only.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Where the admin is mounted: another path keeps it out of the way of scanners that try
# /admin/ (it is staff-only wherever it is).
ADMIN_PATH = env.str("DJANGO_ADMIN_PATH", default="admin/").strip("/") or "admin"

# What a Prometheus scrape of /metrics and /metrics/features must send as its bearer token;
# unset, only this host may scrape (frontend.access.metrics_access).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Where a process other than the web (the relay, each consumer, the Celery worker) serves its
# own metrics (``events.telemetry``): 0 serves nothing. Unset, the port honcho gives each
# process of the Procfile (``PORT``), so ``make demo``'s processes never collide; the host is
# this one only unless told otherwise (a container's scraper reaches it on 0.0.0.0).
METRICS_PORT = env.int("METRICS_PORT", default=env.int("PORT", default=0))
METRICS_HOST = env.str("METRICS_HOST", default="127.0.0.1")
# A forking process's (Celery prefork, several web workers) shared directory of samples, as
# the operator set it: read here, before Feast, imported later, sets one of its own.
METRICS_MULTIPROCESS_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")

# Brute force: django-axes counts failed logins (the web login, the admin and the API's token
# endpoint all go through ``authenticate``) per username and address; past the limit that pair
# is refused for the cool-off, whatever the password. Per pair, so nobody can lock a rider out
# from another address.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "frontend.lockout.lockout_response"  # 429 with Retry-After

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

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
# PostgreSQL connections kept open in a pool per process (psycopg's, through Django), up to this
# many: a request or a task takes one and gives it back instead of connecting anew (a few
# milliseconds each: docs/performance.md). 0 connects per request, as before. Under ASGI a
# pool, not CONN_MAX_AGE, is what keeps connections: each request runs in its own thread context.
DATABASE_POOL_SIZE = env.int("DATABASE_POOL_SIZE", default=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DATABASE_POOL_SIZE:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_SIZE,
        "timeout": 10,
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the relay or a worker writes. Every transaction
    # takes the write lock when it begins (IMMEDIATE) and waits up to 20 s for it: a deferred
    # one that read first and then writes fails at once with "database is locked" when another
    # process writes meanwhile (SQLite cannot wait there), which the demo's ten processes did.
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options["init_command"] = "PRAGMA journal_mode=WAL;"
    options.setdefault("transaction_mode", "IMMEDIATE")
    options.setdefault("timeout", 20)

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

# Rate limits (frontend.limits), each "<requests>/<s|m|h|d>" or empty for none: sign-in form
# posts and API tokens per client address, bookings (quotes, trips, cards added) per rider. The
# counts live in the "throttle" cache: Redis when REDIS_URL is set (every web process counts
# together), else each process's memory.
RATE_LIMIT_LOGIN = env.str("RATE_LIMIT_LOGIN", default="20/m")
RATE_LIMIT_TOKEN = env.str("RATE_LIMIT_TOKEN", default="20/m")
RATE_LIMIT_BOOKING = env.str("RATE_LIMIT_BOOKING", default="120/m")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "rideshare-limits",
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "limits"}
    ),
}
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# The card processor's key for its endpoints (chargebacks). A known one only in DEBUG; unset
# elsewhere, the endpoints refuse every call (503) rather than take one unchecked.
PROCESSOR_API_KEY = env.str("PROCESSOR_API_KEY", default="processor-demo-key" if DEBUG else "")

# The event stream: Kafka, or the embedded durable log on SQLite (same semantics).
EVENT_BUS = env.str("EVENT_BUS", default="embedded")
if EVENT_BUS not in {"embedded", "kafka"}:
    raise ImproperlyConfigured(f"EVENT_BUS must be 'embedded' or 'kafka', not {EVENT_BUS!r}.")
KAFKA_BOOTSTRAP_SERVERS = env.list("KAFKA_BOOTSTRAP_SERVERS", default=["127.0.0.1:9092"])
# Bounds every Kafka wait (bootstrap, request, delivery), so a missing broker fails fast.
KAFKA_TIMEOUT_SECONDS = env.float("KAFKA_TIMEOUT_SECONDS", default=10.0)
EVENT_LOG_PATH = Path(env.str("EVENT_LOG_PATH", default=str(VAR_DIR / "event-log.sqlite3")))
EVENT_TOPIC_PARTITIONS = env.int("EVENT_TOPIC_PARTITIONS", default=3)

# The feature platform (features/): Feast registry, online store, offline Parquet, window state.
FEAST_PROJECT = env.str("FEAST_PROJECT", default="rideshare")
# A SQLAlchemy URL: SQLite on the embedded default, PostgreSQL with real services.
FEAST_REGISTRY = env.str(
    "FEAST_REGISTRY", default=f"sqlite:///{VAR_DIR / 'feast-registry.sqlite3'}"
)
# "sqlite" (embedded) or "redis" (REDIS_URL): the online store and the stream window state.
FEATURES_ONLINE_STORE = env.str("FEATURES_ONLINE_STORE", default="sqlite")
if FEATURES_ONLINE_STORE not in {"sqlite", "redis"}:
    raise ImproperlyConfigured(
        f"FEATURES_ONLINE_STORE must be 'sqlite' or 'redis', not {FEATURES_ONLINE_STORE!r}."
    )
FEATURES_DATA_DIR = Path(env.str("FEATURES_DATA_DIR", default=str(VAR_DIR / "features")))
# Each DuckDB connection of the offline engine (training sets, backfills, materialisation) holds
# at most this much memory (DuckDB's size syntax: "1GB", "512MB") and spills past it to a
# directory of its own under FEATURES_DUCKDB_TEMP_DIR, so a large spine slows down, not the
# machine.
FEATURES_DUCKDB_MEMORY_LIMIT = env.str("FEATURES_DUCKDB_MEMORY_LIMIT", default="1GB")
FEATURES_DUCKDB_TEMP_DIR = Path(
    env.str("FEATURES_DUCKDB_TEMP_DIR", default=str(FEATURES_DATA_DIR / "duckdb"))
)
# Out-of-order events up to this far behind the newest seen on their partition still count.
FEATURES_ALLOWED_LATENESS_SECONDS = env.float("FEATURES_ALLOWED_LATENESS_SECONDS", default=60.0)
# How long the stream processor's fetches may wait to fill a batch (Kafka): latency traded for
# fewer, bigger batches (each costs state and store round trips and files whatever its size).
FEATURES_BATCH_WAIT_MS = env.int("FEATURES_BATCH_WAIT_MS", default=50)
# How often the stream processor writes its offline files (and commits its offsets); 0: every batch.
FEATURES_OFFLINE_FLUSH_SECONDS = env.float("FEATURES_OFFLINE_FLUSH_SECONDS", default=1.0)

# The model registry (ml/): LightGBM text models, one <version>.txt file each.
ML_MODELS_DIR = Path(env.str("ML_MODELS_DIR", default=str(VAR_DIR / "models")))
# Training (ml.services.training_run). A full retrain learns from the logged vectors of the
# last ML_TRAIN_WINDOW_DAYS; a fine-tune adds ML_FINE_TUNE_ROUNDS trees to a replica of the
# champion from the newest ML_FINE_TUNE_ROWS matured rows, until its chain reaches
# ML_FINE_TUNE_MAX_TREES trees or its full retrain is ML_FINE_TUNE_MAX_AGE_HOURS old. An
# unlabelled payment counts as legitimate once ML_CHARGEBACK_MATURITY_DAYS old.
ML_TRAIN_WINDOW_DAYS = env.float("ML_TRAIN_WINDOW_DAYS", default=28.0)
ML_FULL_ROUNDS = env.int("ML_FULL_ROUNDS", default=200)
ML_FINE_TUNE_ROWS = env.int("ML_FINE_TUNE_ROWS", default=1000)
ML_FINE_TUNE_ROUNDS = env.int("ML_FINE_TUNE_ROUNDS", default=20)
# ...and ML_FINE_TUNE_REPLAY_ROWS older rows of the window drawn at random beside them.
ML_FINE_TUNE_REPLAY_ROWS = env.int("ML_FINE_TUNE_REPLAY_ROWS", default=1000)
ML_FINE_TUNE_MAX_TREES = env.int("ML_FINE_TUNE_MAX_TREES", default=400)
ML_FINE_TUNE_MAX_AGE_HOURS = env.float("ML_FINE_TUNE_MAX_AGE_HOURS", default=168.0)
ML_CHARGEBACK_MATURITY_DAYS = env.float("ML_CHARGEBACK_MATURITY_DAYS", default=3.0)
# A champion replaced stays as a shadow (ML_KEEP_PREVIOUS_CHAMPION), scoring the same payments,
# and the champion is rolled back to it when its recall on the labelled payments of the window
# (at least ML_CHAMPION_MIN_FRAUDS frauds) falls below ML_CHAMPION_MIN_RECALL where the
# previous one's is higher and its average precision no lower.
ML_KEEP_PREVIOUS_CHAMPION = env.bool("ML_KEEP_PREVIOUS_CHAMPION", default=True)
ML_CHAMPION_MIN_RECALL = env.float("ML_CHAMPION_MIN_RECALL", default=0.5)
ML_CHAMPION_MIN_FRAUDS = env.int("ML_CHAMPION_MIN_FRAUDS", default=20)
# Inputs the training-data gate lets a candidate's training set hold constant (ml.gates): a
# deployment where they cannot vary, as the demo's loop (config/loop.env).
ML_GATE_MAY_BE_CONSTANT = env.list("ML_GATE_MAY_BE_CONSTANT", default=[])
# Deploy a model the offline gates approved as champion at once (the demo's loop); off, an
# approved model waits for a person (`manage.py promote`) or the online evaluation.
ML_PROMOTE_APPROVED = env.bool("ML_PROMOTE_APPROVED", default=False)
# Online evaluation: a bandit (ml.services.bandit_start) updated every ML_BANDIT_UPDATE_SECONDS
# gives each arm at least ML_BANDIT_FLOOR of the cards and promotes the arm that is the best
# with probability ML_BANDIT_CONFIDENCE once every arm has ML_BANDIT_MIN_SAMPLES rewards.
ML_BANDIT_UPDATE_SECONDS = env.float("ML_BANDIT_UPDATE_SECONDS", default=30.0)
ML_BANDIT_FLOOR = env.float("ML_BANDIT_FLOOR", default=0.05)
ML_BANDIT_CONFIDENCE = env.float("ML_BANDIT_CONFIDENCE", default=0.95)
ML_BANDIT_MIN_SAMPLES = env.int("ML_BANDIT_MIN_SAMPLES", default=100)
# Canary guardrails (ml.canary), checked every ML_CANARY_CHECK_SECONDS over the newest
# ML_CANARY_WINDOW_SCORES scores once a canary has ML_CANARY_MIN_SAMPLE of them: a canary whose
# flagged or declined share is above the champion's times its ratio, or whose degraded share is
# above the champion's plus the gap (each beyond chance), or whose p99 latency is above the
# champion's times the ratio plus the slack, is rolled back.
ML_CANARY_CHECK_SECONDS = env.float("ML_CANARY_CHECK_SECONDS", default=15.0)
ML_CANARY_WINDOW_SCORES = env.int("ML_CANARY_WINDOW_SCORES", default=20000)
ML_CANARY_MIN_SAMPLE = env.int("ML_CANARY_MIN_SAMPLE", default=100)
ML_CANARY_MAX_FLAGGED_RATIO = env.float("ML_CANARY_MAX_FLAGGED_RATIO", default=2.0)
ML_CANARY_MAX_DECLINED_RATIO = env.float("ML_CANARY_MAX_DECLINED_RATIO", default=2.0)
ML_CANARY_MAX_DEGRADED_GAP = env.float("ML_CANARY_MAX_DEGRADED_GAP", default=0.05)
ML_CANARY_MAX_ERROR_GAP = env.float("ML_CANARY_MAX_ERROR_GAP", default=0.01)
ML_CANARY_MAX_LATENCY_RATIO = env.float("ML_CANARY_MAX_LATENCY_RATIO", default=1.5)
ML_CANARY_LATENCY_SLACK_MS = env.float("ML_CANARY_LATENCY_SLACK_MS", default=20.0)
# With ML_CANARY_DECIDE a canary (not a bandit's arm) that beats the champion on the known
# outcomes of the payments each decided since it became a canary (a z-test at 0.05, at least
# ML_CANARY_MIN_REWARDS outcomes each) is promoted; one the champion beats is retired.
ML_CANARY_DECIDE = env.bool("ML_CANARY_DECIDE", default=True)
ML_CANARY_MIN_REWARDS = env.int("ML_CANARY_MIN_REWARDS", default=1000)
# Shadows (ml.services.shadows_check, with the canaries' check): with ML_SHADOW_TO_CANARY, a
# shadow compared with the champion on ML_SHADOW_MIN_SAMPLE payments, within every guardrail and
# no more than ML_SHADOW_AP_TOLERANCE below its average precision, becomes a canary deciding for
# ML_SHADOW_CANARY_SHARE of the cards.
ML_SHADOW_TO_CANARY = env.bool("ML_SHADOW_TO_CANARY", default=False)
ML_SHADOW_MIN_SAMPLE = env.int("ML_SHADOW_MIN_SAMPLE", default=1000)
ML_SHADOW_AP_TOLERANCE = env.float("ML_SHADOW_AP_TOLERANCE", default=0.05)
ML_SHADOW_CANARY_SHARE = env.float("ML_SHADOW_CANARY_SHARE", default=0.1)
# A queued or running training not heard from for this long is taken for dead (its worker
# killed and the task not redelivered): another request may start.
ML_TRAINING_STALE_SECONDS = env.float("ML_TRAINING_STALE_SECONDS", default=900.0)
# The triggers (ml.triggers), checked every ML_TRIGGER_CHECK_SECONDS, in event time: a full
# retrain every ML_TRIGGER_EVERY_HOURS, a fine-tune every ML_TRIGGER_LABELS new labels or when
# review precision or chargeback recall over ML_TRIGGER_WINDOW_HOURS falls below its floor (with
# at least ML_TRIGGER_MIN_SAMPLE labels), a full retrain when the PSI of the score or an input
# over the newest ML_DRIFT_SAMPLE payments passes ML_TRIGGER_MAX_PSI. A trigger that started a
# training waits ML_TRIGGER_COOLDOWN_HOURS before it fires again.
ML_TRIGGER_CHECK_SECONDS = env.float("ML_TRIGGER_CHECK_SECONDS", default=60.0)
ML_TRIGGER_EVERY_HOURS = env.float("ML_TRIGGER_EVERY_HOURS", default=24.0)
ML_TRIGGER_LABELS = env.int("ML_TRIGGER_LABELS", default=1000)
ML_TRIGGER_WINDOW_HOURS = env.float("ML_TRIGGER_WINDOW_HOURS", default=24.0)
ML_TRIGGER_MIN_PRECISION = env.float("ML_TRIGGER_MIN_PRECISION", default=0.1)
ML_TRIGGER_MIN_RECALL = env.float("ML_TRIGGER_MIN_RECALL", default=0.5)
ML_TRIGGER_MIN_SAMPLE = env.int("ML_TRIGGER_MIN_SAMPLE", default=30)
ML_TRIGGER_MAX_PSI = env.float("ML_TRIGGER_MAX_PSI", default=0.2)
ML_TRIGGER_COOLDOWN_HOURS = env.float("ML_TRIGGER_COOLDOWN_HOURS", default=6.0)
ML_DRIFT_SAMPLE = env.int("ML_DRIFT_SAMPLE", default=2000)
# Fewer payments in the window than this: no drift figure (sampling noise alone passes 0.2).
ML_DRIFT_MIN_SAMPLE = env.int("ML_DRIFT_MIN_SAMPLE", default=500)

# The booking's capture checkpoint: at a trip's completion its fare waits up to this long for
# the capture scorer's verdict (``manage.py consume fraud-capture-scorer``: capture, hold for
# review, void) and is captured without one after it; 0 captures at completion, unscored.
RIDESHARE_CAPTURE_WAIT_SECONDS = env.float("RIDESHARE_CAPTURE_WAIT_SECONDS", default=120.0)
# How often Celery beat captures the fares whose verdict is overdue (rideshare.captures_overdue).
RIDESHARE_CAPTURE_OVERDUE_EVERY_SECONDS = env.float(
    "RIDESHARE_CAPTURE_OVERDUE_EVERY_SECONDS", default=30.0
)

# The scorer (fraud/, ``manage.py consume fraud-scorer``).
# The authorization checkpoint's feature service: what its scorer serves, its models learn
# (bootstrap, retraining from its log) and its gates test (features.definitions).
FRAUD_SERVICE = env.str("FRAUD_SERVICE", default="fraud_scoring_v1")
# LightGBM threads per prediction: explicit, since its default spins a thread per core and its
# p99 jumps to milliseconds when the other cores are busy.
FRAUD_MODEL_THREADS = env.int("FRAUD_MODEL_THREADS", default=1)
# Budget of one online feature read; a read failing or slower than this degrades the batch.
FRAUD_FEATURE_TIMEOUT_MS = env.float("FRAUD_FEATURE_TIMEOUT_MS", default=250.0)
# A degraded score of this many cents or more goes to review whatever its value.
FRAUD_DEGRADED_REVIEW_CENTS = env.int("FRAUD_DEGRADED_REVIEW_CENTS", default=5000)
# Most payment events scored per micro-batch (Feast's online read costs more per row above ~200).
FRAUD_BATCH_MAX = env.int("FRAUD_BATCH_MAX", default=200)
# How often a scorer checks the Deployment table for model changes.
FRAUD_DEPLOYMENT_POLL_SECONDS = env.float("FRAUD_DEPLOYMENT_POLL_SECONDS", default=2.0)
# The scorer checks the lists and rules for changes this often (fraud.policy_watch).
FRAUD_POLICY_POLL_SECONDS = env.float("FRAUD_POLICY_POLL_SECONDS", default=2.0)
# Explain every score, not only flagged ones (pred_contrib costs 25-100 predictions a row).
FRAUD_EXPLAIN_ALL = env.bool("FRAUD_EXPLAIN_ALL", default=False)
# The scorer writes the served vectors to the feature log (one file) and commits its offsets
# this often (or every 1000 vectors): fewer, larger log files than one per micro-batch.
FRAUD_LOG_FLUSH_SECONDS = env.float("FRAUD_LOG_FLUSH_SECONDS", default=1.0)
# Batches of at least this many payment events are recorded while the next one is scored.
FRAUD_OVERLAP_MIN_RECORDS = env.int("FRAUD_OVERLAP_MIN_RECORDS", default=50)
FRAUD_CONSISTENCY_WAIT_MS = env.float("FRAUD_CONSISTENCY_WAIT_MS", default=20.0)
# How often Celery beat rescores degraded scores (fraud.rescore_degraded).
FRAUD_RESCORE_EVERY_SECONDS = env.float("FRAUD_RESCORE_EVERY_SECONDS", default=60.0)
# The review queue: an analyst's claim on a review lapses after this long without a decision;
# a review open past the SLA is escalated (first in the queue), and one open past the expiry
# is closed by the expiry policy: ``capture`` (approved) or ``void`` (refunded, not as fraud).
FRAUD_REVIEW_CLAIM_MINUTES = env.float("FRAUD_REVIEW_CLAIM_MINUTES", default=15.0)
FRAUD_REVIEW_SLA_MINUTES = env.float("FRAUD_REVIEW_SLA_MINUTES", default=60.0)
FRAUD_REVIEW_EXPIRY_HOURS = env.float("FRAUD_REVIEW_EXPIRY_HOURS", default=72.0)
FRAUD_REVIEW_EXPIRY_POLICY = env.str("FRAUD_REVIEW_EXPIRY_POLICY", default="capture")
# What a review costs an analyst, for rule backtests (fraud.backtest).
FRAUD_REVIEW_MINUTES = env.float("FRAUD_REVIEW_MINUTES", default=4.0)
if FRAUD_REVIEW_EXPIRY_POLICY not in {"capture", "void"}:
    raise ImproperlyConfigured(
        f"FRAUD_REVIEW_EXPIRY_POLICY is {FRAUD_REVIEW_EXPIRY_POLICY!r}; use capture or void."
    )

# Celery: with no broker server, kombu's SQLAlchemy transport keeps the queue in SQLite.
CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL", default=f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"
)
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"ml.tasks.train_*": {"queue": "training"}}
CELERY_TASK_ACKS_LATE = True
# How long a task a worker took may stay unacknowledged before the Redis broker hands it to
# another worker (with acks_late, how a task whose worker was killed is run again). Longer than
# the longest task (a retraining): a running task is otherwise handed out twice. Redis only:
# the SQLAlchemy transport passes its options to create_engine, which refuses this one.
TASK_VISIBILITY_TIMEOUT_S = env.float("CELERY_VISIBILITY_TIMEOUT_SECONDS", default=7200.0)
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": TASK_VISIBILITY_TIMEOUT_S}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Batch feature views (features.materialize) are re-evaluated and published this often.
FEATURES_MATERIALIZE_EVERY_SECONDS = env.float("FEATURES_MATERIALIZE_EVERY_SECONDS", default=3600.0)
# The served-vs-offline consistency report (features.consistency.served_consistency_run) runs
# this often, over a sample of the vectors logged since its last run.
FEATURES_SERVED_CONSISTENCY_EVERY_SECONDS = env.float(
    "FEATURES_SERVED_CONSISTENCY_EVERY_SECONDS", default=900.0
)
FEATURES_SERVED_CONSISTENCY_SAMPLE = env.int("FEATURES_SERVED_CONSISTENCY_SAMPLE", default=2000)
# Every periodic task is declared here, in one place.
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    "features-materialize-batch-views": {
        "task": "features.materialize_batch_views",
        "schedule": FEATURES_MATERIALIZE_EVERY_SECONDS,
    },
    "features-served-consistency": {
        "task": "features.served_consistency",
        "schedule": FEATURES_SERVED_CONSISTENCY_EVERY_SECONDS,
    },
    "fraud-rescore-degraded": {
        "task": "fraud.rescore_degraded",
        "schedule": FRAUD_RESCORE_EVERY_SECONDS,
    },
    "ml-triggers-check": {
        "task": "ml.triggers_check",
        "schedule": ML_TRIGGER_CHECK_SECONDS,
    },
    "ml-canaries-check": {
        "task": "ml.canaries_check",
        "schedule": ML_CANARY_CHECK_SECONDS,
    },
    "ml-bandit-update": {
        "task": "ml.bandit_update",
        "schedule": ML_BANDIT_UPDATE_SECONDS,
    },
    "rideshare-captures-overdue": {
        "task": "rideshare.captures_overdue",
        "schedule": RIDESHARE_CAPTURE_OVERDUE_EVERY_SECONDS,
    },
    "fraud-reviews-escalate": {
        "task": "fraud.reviews_escalate",
        "schedule": 60.0,
    },
}

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
