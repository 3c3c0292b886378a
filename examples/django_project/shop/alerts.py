"""A logging filter that shows who made the request behind a ``django.request`` record."""

import logging


class RequestUser(logging.Filter):
    """Adds ``user`` (the request's user, ``AnonymousUser`` when not signed in) to records with a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if request is not None:
            record.user = str(getattr(request, "user", "-"))
        return True
