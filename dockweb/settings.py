"""Django settings for dockweb, read from the environment.

Every value comes through one of the small ``env_*`` helpers below: a value that does not
parse stops the process at start-up with a message naming the variable, rather than being
silently replaced by a default.
"""

from __future__ import annotations

import importlib.util
import math
import os
import secrets
import warnings
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from dockweb.runtime.limits import DEFAULT_LAYER_LIMITS

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r}: use true or false")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r}: expected an integer") from None


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise ImproperlyConfigured(f"{name}={value!r}: expected a number")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list; empty items are dropped."""
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise ImproperlyConfigured(f"{name}={value!r}: expected an absolute path")
    return path


def database_from_url(url: str) -> dict:
    """Django's DATABASES entry for ``postgres://user:pass@host:port/name?opt=v``
    or ``sqlite:////absolute/path``.

    PostgreSQL needs psycopg; asking for it without psycopg installed fails here, at
    start-up, instead of at the first query.
    """
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:////abs/path -> path "//abs/path"; sqlite:///rel is not supported.
        path = unquote(parts.path)
        if not path.startswith("//"):
            raise ImproperlyConfigured(
                f"DATABASE_URL={url!r}: use sqlite:////absolute/path/db.sqlite3"
            )
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path[1:]}
    if parts.scheme in ("postgres", "postgresql"):
        if importlib.util.find_spec("psycopg") is None:
            raise ImproperlyConfigured(
                "DATABASE_URL is a PostgreSQL URL but psycopg is not installed: "
                "run `pip install -e '.[postgres]'`"
            )
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(f"DATABASE_URL={url!r}: missing database name")
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"DATABASE_URL={url!r}: invalid port") from None
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": unquote(parts.hostname or ""),
            "PORT": str(port or ""),
            "OPTIONS": dict(parse_qsl(parts.query)),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(
        f"DATABASE_URL={url!r}: unsupported scheme {parts.scheme!r} (use postgres:// or sqlite://)"
    )


def persistent_secret_key(path: Path) -> str:
    """The key stored at ``path``, created (mode 0600) on first use.

    Creation uses O_EXCL, so two processes starting at once (web and worker) end up with
    the same key: the loser of the race reads the winner's file.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if not key:
            raise ImproperlyConfigured(
                f"{path} is empty: delete it to generate a new key"
            ) from None
        return key
    key = secrets.token_urlsafe(50)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


# --- dockweb ---------------------------------------------------------------------------

# Everything dockweb writes: database, secret key, admin password, the runtime's store.
DOCKWEB_DATA = env_path("DOCKWEB_DATA", BASE_DIR / "var")
DOCKWEB_DATA.mkdir(parents=True, exist_ok=True)
# Root of the runtime's content and layer store (see docs/runtime.md).
DOCKWEB_ROOT = env_path("DOCKWEB_ROOT", DOCKWEB_DATA / "store")
# Registries reached over plain HTTP besides loopback ones (Docker's insecure-registries).
DOCKWEB_INSECURE_REGISTRIES = env_list("DOCKWEB_INSECURE_REGISTRIES", [])
# Host directories operators may bind-mount from on the web side (access/hostaccess.py);
# empty: none, bind mounts of host paths are an admin's. Absolute paths, comma-separated.
DOCKWEB_BIND_ROOTS = env_list("DOCKWEB_BIND_ROOTS", [])
if any(not os.path.isabs(root) for root in DOCKWEB_BIND_ROOTS):
    raise ImproperlyConfigured(
        f"DOCKWEB_BIND_ROOTS={','.join(DOCKWEB_BIND_ROOTS)!r}: expected absolute paths"
    )
# Layers downloaded at once by one pull (dockerd's max-concurrent-downloads).
DOCKWEB_MAX_CONCURRENT_DOWNLOADS = env_int("DOCKWEB_MAX_CONCURRENT_DOWNLOADS", 3)
# Tar-bomb guards on each pulled layer (images.services.pulls.layer_limits), defaults from
# the runtime's DEFAULT_LAYER_LIMITS: entries, unpacked bytes, and unpacked bytes per
# compressed byte once a layer has unpacked more than the ratio floor (bytes).
DOCKWEB_LAYER_MAX_ENTRIES = env_int("DOCKWEB_LAYER_MAX_ENTRIES", DEFAULT_LAYER_LIMITS.max_entries)
DOCKWEB_LAYER_MAX_BYTES = env_int("DOCKWEB_LAYER_MAX_BYTES", DEFAULT_LAYER_LIMITS.max_bytes)
DOCKWEB_LAYER_MAX_RATIO = env_float("DOCKWEB_LAYER_MAX_RATIO", DEFAULT_LAYER_LIMITS.max_ratio)
DOCKWEB_LAYER_RATIO_FLOOR = env_int("DOCKWEB_LAYER_RATIO_FLOOR", DEFAULT_LAYER_LIMITS.ratio_floor)
# Seconds between two writes of a pull's or build's progress to its rows: how stale a page
# showing it may be.
DOCKWEB_PROGRESS_INTERVAL = env_float("DOCKWEB_PROGRESS_INTERVAL", 0.2)
# Bytes a build context uploaded on the Build page may unpack to.
DOCKWEB_BUILD_CONTEXT_LIMIT = env_int("DOCKWEB_BUILD_CONTEXT_LIMIT", 2 << 30)
# The Docker Engine API (`dockweb system service`): where it listens by default, and the
# unix socket's mode (octal) and group. Whoever can open the socket controls the engine:
# it is root-equivalent, as Docker's own socket is.
DOCKWEB_API_SOCKET = env_str("DOCKWEB_API_SOCKET", "unix:///run/dockweb/docker.sock")
DOCKWEB_API_SOCKET_MODE = int(env_str("DOCKWEB_API_SOCKET_MODE", "660"), 8)
DOCKWEB_API_SOCKET_GROUP = env_str("DOCKWEB_API_SOCKET_GROUP", "")
# Characters a query parameter's name or value may have on the web side (a longer one is a
# 400): references are at most 255 + 128 + 72; filters, searches and patterns need less.
DOCKWEB_MAX_QUERY_PARAM = env_int("DOCKWEB_MAX_QUERY_PARAM", 1024)

# --- core ------------------------------------------------------------------------------

SECRET_KEY = os.environ.get("SECRET_KEY") or persistent_secret_key(DOCKWEB_DATA / "secret_key")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "images",
    "containers",
    "networks",
    "disk",
    "access",
    # sign-in throttling (AXES_* below)
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # static files from the server itself; hashed names cached for a year (STORAGES below)
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    # a query parameter longer than DOCKWEB_MAX_QUERY_PARAM is a 400 before any view
    "dockweb.middleware.BoundedQueryMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every view needs a logged-in user unless marked @login_not_required (login, admin login).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # last, as django-axes asks: turns a locked-out sign-in into the lockout page
    "axes.middleware.AxesMiddleware",
]

# threads per server process that run the pages under scripts/run (dockweb/asgi.py)
DOCKWEB_WEB_THREADS = env_int("DOCKWEB_WEB_THREADS", 16)

ROOT_URLCONF = "dockweb.urls"
WSGI_APPLICATION = "dockweb.wsgi.application"
ASGI_APPLICATION = "dockweb.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "images.context_processors.active_pulls",
                "access.roles.context",
            ],
        },
    },
]

# --- database --------------------------------------------------------------------------

DATABASES = {
    "default": database_from_url(
        env_str("DATABASE_URL", f"sqlite:///{DOCKWEB_DATA / 'db.sqlite3'}")
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The worker writes progress while the web server reads: WAL and a busy timeout keep
    # that from failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # Tests get a file too (not the in-memory default): the pull writer thread and the
    # worker's main thread then share it exactly as in production, WAL included.
    DATABASES["default"]["TEST"] = {"NAME": str(DOCKWEB_DATA / "test-db.sqlite3")}
# Connections outlive a request (each server thread keeps its own). A new SQLite connection
# costs more than the queries of a progress poll: opening the file, the PRAGMAs, and parsing
# the schema again on first use (5 ms of a 13 ms Images page). Checked before reuse.
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- auth ------------------------------------------------------------------------------

LOGIN_URL = "/login/"
# Django's database sessions and ModelBackend, each read with one plain query per request
# (django-axes' backend first: it refuses a locked-out sign-in before the password is read)
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "access.fastload.Backend"]
SESSION_ENGINE = "access.fastload"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

# Sign-in throttling (django-axes): after DOCKWEB_LOGIN_FAILURE_LIMIT failed sign-ins for
# one username (from any address), or from one address (for any username), further sign-ins
# for it are refused, the right password included, for DOCKWEB_LOGIN_COOLOFF seconds (0:
# until an admin lifts it: the admin's "Access attempts", or `manage.py axes_reset`,
# `axes_reset_username NAME`, `axes_reset_ip ADDR`). A successful sign-in clears the count;
# each lockout is in the audit log (access/lockout.py).
AXES_FAILURE_LIMIT = env_int("DOCKWEB_LOGIN_FAILURE_LIMIT", 5)
_LOGIN_COOLOFF = env_int("DOCKWEB_LOGIN_COOLOFF", 900)
AXES_COOLOFF_TIME = timedelta(seconds=_LOGIN_COOLOFF) if _LOGIN_COOLOFF > 0 else None
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# a sign-in refused while locked is not counted again (no write per refused attempt, and
# the lock ends DOCKWEB_LOGIN_COOLOFF after the failure that set it)
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# the address is REMOTE_ADDR, as the audit log's (a client-set X-Forwarded-For is no address)
AXES_CLIENT_IP_CALLABLE = "access.lockout.client_address"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- security --------------------------------------------------------------------------

# DJANGO_ENV=production: the settings Django's deployment checklist asks for
# (`manage.py check --deploy` is clean); it implies HTTPS and refuses DEBUG.
DJANGO_ENV = env_str("DJANGO_ENV", "development")
if DJANGO_ENV not in ("development", "production"):
    raise ImproperlyConfigured(f"DJANGO_ENV={DJANGO_ENV!r}: use development or production")
PRODUCTION = DJANGO_ENV == "production"
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG=true with DJANGO_ENV=production: turn one of them off")
# Served over HTTPS (directly or by a proxy): secure cookies, HSTS, redirect to https://.
DOCKWEB_HTTPS = env_bool("DOCKWEB_HTTPS", PRODUCTION)
if DOCKWEB_HTTPS:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
# Behind a proxy that terminates TLS and sets X-Forwarded-Proto (and strips the client's):
# without it, SECURE_SSL_REDIRECT would redirect forever.
if env_bool("DOCKWEB_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
# No script reads the CSRF cookie: pages carry the token (hx-headers, data-csrf).
CSRF_COOKIE_HTTPONLY = True
# Sessions last a working day, not Django's two weeks: a forgotten browser is root.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600)
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy: scripts only from this site's own files (no inline script or
# handler anywhere, no eval), requests only to this site. Styles may be inline: progress
# bars set their widths in style attributes, and htmx and xterm.js add style elements.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# --- i18n ------------------------------------------------------------------------------

LANGUAGE_CODE = env_str("LANGUAGE_CODE", "en")
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- static files ----------------------------------------------------------------------

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DOCKWEB_DATA / "static"
# DOCKWEB_STATIC_HASHED (scripts/run sets it, and runs `manage.py collectstatic` first):
# the pages name static files by content hash and WhiteNoise serves them from STATIC_ROOT,
# compressed, with `Cache-Control: max-age=315360000, immutable`. Without it (tests,
# runserver) they are served from STATICFILES_DIRS under their own names, max-age 60 s.
DOCKWEB_STATIC_HASHED = env_bool("DOCKWEB_STATIC_HASHED", False)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "dockweb.staticfiles.HashedStaticFiles"
            if DOCKWEB_STATIC_HASHED
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = not DOCKWEB_STATIC_HASHED
if not DOCKWEB_STATIC_HASHED:
    # WhiteNoise warns when STATIC_ROOT is missing, which it is until collectstatic runs
    warnings.filterwarnings("ignore", message="No directory at: ")

# --- Celery (read by dockweb/celery.py through the CELERY namespace) -------------------

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
# Console sessions carry pty output and keystrokes through this Redis (the broker's by default)
DOCKWEB_REDIS_URL = env_str("REDIS_URL", CELERY_BROKER_URL)
# a console nobody typed into for this long (seconds) is closed by the worker
DOCKWEB_CONSOLE_IDLE_TIMEOUT = env_int("DOCKWEB_CONSOLE_IDLE_TIMEOUT", 1800)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Tasks record their outcome in database rows; nobody reads Celery results.
CELERY_TASK_IGNORE_RESULT = True
# A pull interrupted by a worker crash is delivered again; tasks claim their row
# conditionally, so a duplicate delivery does nothing.
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# A web request that queues work must not hang when Redis is down: a few quick tries, then
# the row is marked failed with a message saying so (images.services.common.enqueue).
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 5}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
