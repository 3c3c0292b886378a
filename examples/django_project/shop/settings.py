"""Settings of the example shop: the part that matters here is ``LOGGING``."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "shop.urls"
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes"]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"  # the example has no database
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# django.request logs every unhandled exception ("Internal Server Error: /orders/42/") with the
# request attached; the filter adds the user, and the handler sends it to the chat group.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_user": {"()": "shop.alerts.RequestUser"},
    },
    "handlers": {
        "chat": {
            "class": "chatlog.ChatHandler",
            "level": "ERROR",
            "url": os.environ["CHATLOG_URL"],
            "service": "shop",
            "environment": "dev",
            "filters": ["request_user"],
        },
    },
    "root": {"handlers": ["chat"], "level": "INFO"},
}
