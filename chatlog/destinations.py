"""Destination strings (``dingtalk://TOKEN?secret=SEC…``, platform URLs) → `Destination` objects.

Platforms are found, not listed: every module under ``chatlog/platforms/`` registers its
`Destination` subclass, so adding a platform needs no change here.
"""

from __future__ import annotations

import importlib
import pkgutil
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

import chatlog.platforms
from chatlog.platforms._base import Destination, Target

_OPTIONS = ("secret", "keyword", "base_url", "platform", "at")


@dataclass(frozen=True, slots=True)
class Resolved:
    """A parsed destination string: where to send, its keyword, and the ``at=`` mentions it asked for."""

    destination: Destination
    keyword: str | None = None
    at: tuple[str, ...] = ()


def platform_classes() -> list[type[Destination]]:
    """Every registered platform class (importing each module under ``chatlog.platforms`` once)."""
    for module in pkgutil.iter_modules(chatlog.platforms.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"chatlog.platforms.{module.name}")
    return list(Destination.registry)


def _examples() -> str:
    return ", ".join(cls.example for cls in platform_classes() if cls.example)


def resolve(
    url: str,
    *,
    secret: str | None = None,
    keyword: str | None = None,
    platform: str | None = None,
    options: Mapping[str, str] | None = None,
) -> Resolved:
    """Parse `url`; keyword arguments win over the URL's query options.

    `options` are platform options given outside the URL (``app_id=``, ``receive_ids=`` …); they
    replace query parameters of the same name, and the platform consumes them like those.
    Raises ValueError naming the wrong part and showing a valid example; secrets never appear.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"chatlog needs a destination URL, got {type(url).__name__}; e.g. {_examples()}")
    parts = urllib.parse.urlsplit(url.strip())
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    query.update({name: value for name, value in (options or {}).items() if value is not None})
    options = {name: query.pop(name) for name in _OPTIONS if name in query}
    chosen = _check_platform(platform or options.get("platform"))
    cls, name = _pick_class(parts, chosen)
    target = Target(
        url=parts,
        query=query,
        platform=name,
        secret=_text_option("secret", secret, options),
        keyword=_text_option("keyword", keyword, options),
        base_url=_base_url(options.get("base_url"), cls),
    )
    destination = cls.from_target(target)
    if target.query:
        unknown = ", ".join(sorted(target.query))
        raise ValueError(
            f"unknown option(s) for a {name} destination: {unknown}. "
            f"Known options: {', '.join(_OPTIONS + cls.options)}; e.g. {cls.example}"
        )
    at = tuple(part.strip() for part in options.get("at", "").split(",") if part.strip())
    return Resolved(destination, target.keyword, at)


def _text_option(name: str, given: str | None, options: dict[str, str]) -> str | None:
    value = given if given is not None else options.get(name)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name}= must be a string, got {type(value).__name__}")
    return value or None


def _check_platform(platform: str | None) -> str | None:
    if platform is None:
        return None
    names = [name for cls in platform_classes() for name in cls.names]
    if platform.lower() not in names:
        raise ValueError(f"unknown platform {platform!r}: use one of {', '.join(names)}")
    return platform.lower()


def _pick_class(parts: urllib.parse.SplitResult, chosen: str | None) -> tuple[type[Destination], str]:
    scheme = parts.scheme.lower()
    classes = platform_classes()
    if scheme not in ("http", "https"):
        for cls in classes:
            if scheme in cls.names:
                return cls, scheme
        shown = f"{scheme}://" if scheme else "a URL without a scheme"
        raise ValueError(f"unknown destination {shown}: use a platform's webhook URL or e.g. {_examples()}")
    for cls in classes:
        if chosen is not None and chosen in cls.names:
            return cls, chosen
    host = (parts.hostname or "").lower()
    on_path = [cls for cls in classes if any(parts.path.startswith(prefix) for prefix in cls.paths)]
    on_host = [cls for cls in classes if host in cls.hosts]
    for cls in [c for c in on_host if c in on_path] + on_host:  # one host may serve several platforms
        index = cls.hosts.index(host)
        return cls, cls.names[min(index, len(cls.names) - 1)]
    for cls in on_path:
        return cls, cls.names[0]
    raise ValueError(
        f"cannot tell which platform the URL on host {host or '?'} is for: its path is not a known "
        f"webhook path; add platform=NAME or use e.g. {_examples()}"
    )


def _base_url(value: str | None, cls: type[Destination]) -> str | None:
    if value is None:
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"base_url= must look like http://127.0.0.1:8080 (scheme and host), got {value!r}; "
            f"e.g. {cls.example} with base_url=http://127.0.0.1:8080"
        )
    return f"{parts.scheme}://{parts.netloc}"
