"""Destination strings (``dingtalk://TOKEN?secret=SEC…``, platform URLs) → `Destination` objects.

Platforms are found, not listed: every module under ``chatlog/platforms/`` registers its
`Destination` subclass with its option table, so adding a platform needs no change here.
Errors name options, never their values, and mask every credential the string holds.
"""

from __future__ import annotations

import importlib
import os
import urllib.parse
from collections.abc import Mapping

import chatlog.platforms
from chatlog._lazy import lazy_pattern
from chatlog._record import Record
from chatlog.platforms._base import COMMON_OPTIONS, Destination, Target, redact

_COMMON = tuple(option.name for option in COMMON_OPTIONS)
_NAME = lazy_pattern(r"[a-z][a-z0-9_]{0,30}")
_USERINFO = lazy_pattern(r"(?i)\b([a-z][a-z0-9+.-]*://)(?!APP_ID:APP_SECRET@)[^/?#@\s]*@")


class Resolved(Record):
    """A parsed destination string: where to send, its keyword, and the ``at=`` mentions it asked for."""

    destination: Destination
    keyword: str | None = None
    at: tuple[str, ...] = ()


def platform_classes() -> list[type[Destination]]:
    """Every registered platform class (importing each module under ``chatlog.platforms`` once)."""
    for name in _platform_modules():
        importlib.import_module(f"chatlog.platforms.{name}")
    # By module, not by import order: the order anything iterates them in stays the same.
    return sorted(Destination.registry, key=lambda cls: (cls.__module__, cls.__name__))


def _platform_modules() -> list[str]:
    """The public modules under ``chatlog.platforms``, listed from its folder: `pkgutil` (with `typing`)
    would cost an https URL's handler 4 ms; it is asked only when the package is not a folder (a zip)."""
    names: set[str] = set()
    for folder in chatlog.platforms.__path__:
        try:
            names.update(name[:-3] for name in os.listdir(folder) if name.endswith(".py"))
        except OSError:
            import pkgutil

            names.update(module.name for module in pkgutil.iter_modules([folder]))
    return sorted(name for name in names if not name.startswith("_") and name.isidentifier())


def _scheme_class(scheme: str) -> type[Destination] | None:
    """The class that claims `scheme`, importing only the module of that name when there is one
    (``feishu-app`` → ``feishu_app``): constructing a handler then skips the other platforms' imports.
    Still found through the registry; a scheme no module is named after (``lark``) imports them all."""
    module = scheme.replace("-", "_")
    if module.isidentifier() and not module.startswith("_"):
        name = f"chatlog.platforms.{module}"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists and lacks something it imports: not ours to hide
                raise
        else:
            cls = next((cls for cls in Destination.registry if scheme in cls.names), None)
            if cls is not None:
                return cls
    return next((cls for cls in platform_classes() if scheme in cls.names), None)


def platform_options() -> dict[str, bool]:
    """Every option name some platform takes (the common ones included), mapped to "is a secret"."""
    table = {option.name: option.secret for option in COMMON_OPTIONS}
    for cls in platform_classes():
        table.update({option.name: option.secret for option in cls.options})
    return table


def platform_table() -> str:
    """The README's table of platforms and their URL forms, from the registry."""
    rows = ["| platform | URL forms |", "|---|---|"]
    for cls in platform_classes():
        rows += [f"| {title} | {' or '.join(f'`{form}`' for form in forms)} |" for title, forms in cls.forms]
    return "\n".join(rows)


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
    Raises ValueError naming the wrong part and showing a valid example; secrets never appear
    (every credential the string and the options hold is masked, and so is any ``user:password@``).
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"chatlog needs a destination URL, got {type(url).__name__}; e.g. {_examples()}")
    given = {name: value for name, value in (options or {}).items() if value is not None}
    try:
        return _resolve(url.strip(), secret, keyword, platform, given)
    except ValueError as exc:
        hidden = credentials_in(url, {**given, **({"secret": secret} if secret else {})})
        raise ValueError(mask_urls(redact(str(exc), hidden))) from None


def _resolve(url: str, secret: str | None, keyword: str | None, platform: str | None,
             given: Mapping[str, str]) -> Resolved:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    query.update(given)
    common = {name: query.pop(name) for name in _COMMON if name in query}
    chosen = _check_platform(platform or common.get("platform"))
    cls, name = _pick_class(parts, chosen)
    _refuse_unknown(cls, name, parts.query, set(query) - set(given), set(given))
    _refuse_padded_secrets(cls, parts, {**query, **common, **({"secret": secret} if secret else {})})
    target = Target(
        url=parts,
        query=query,
        platform=name,
        secret=_text_option("secret", secret, common),
        keyword=_text_option("keyword", keyword, common),
        base_url=_base_url(common.get("base_url"), cls),
        relay=parts.scheme.lower() in ("http", "https") and not _own_path(parts.path, cls),
    )
    destination = cls.from_target(target)
    if target.query:  # a platform that left one of its own options unconsumed: still an error
        _refuse_unknown(cls, name, "", set(target.query), set())
    at = tuple(part.strip() for part in common.get("at", "").split(",") if part.strip())
    return Resolved(destination, target.keyword, at)


def credentials_in(url: object, options: Mapping[str, object] | None = None) -> tuple[str, ...]:
    """Every credential a destination string and its options hold, as the registry declares them:
    the platform's `Destination.credentials` and the values of options marked secret. Works on
    strings that do not resolve, so errors about them can mask what they hold."""
    if not isinstance(url, str):
        return ()
    parts = urllib.parse.urlsplit(url.strip())
    secret_names = {name for name, secret in platform_options().items() if secret}
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    found = [value for name, value in query if name in secret_names]
    found += [str(value) for name, value in (options or {}).items() if name in secret_names and value]
    try:
        classes = [_pick_class(parts, None)[0]]
    except ValueError:
        classes = platform_classes()  # unknown form: mask what any platform would read as a credential
    for cls in classes:
        found += cls.credentials(parts)
    return tuple(dict.fromkeys(value for value in found if value))


def mask_urls(text: str) -> str:
    """`text` with the ``user:password@`` of every URL in it replaced by ``***@``."""
    return _USERINFO.sub(r"\1***@", text)


def _refuse_unknown(cls: type[Destination], name: str, raw_query: str, in_url: set[str],
                    outside: set[str]) -> None:
    names = [option.name for option in cls.option_table()]
    known = set(names)
    unknown = (in_url | outside) - known
    if not unknown:
        return
    suspects = _maybe_part_of_a_value(raw_query, known)
    shown = sorted(option for option in unknown if _NAME.fullmatch(option) and option not in suspects)
    hidden = len(unknown) - len(shown)
    parts = [", ".join(shown)] if shown else []
    if hidden:
        parts.append(f"{hidden} after a secret or not shaped like a name, not shown (it may be part of a "
                     "secret: URL-quote '&' in a secret as %26 and '=' as %3D)")
    raise ValueError(
        f"unknown option(s) for a {name} destination: {'; '.join(parts)}. "
        f"Known options: {', '.join(names)}; e.g. {cls.example}"
    )


def _maybe_part_of_a_value(raw_query: str, known: set[str]) -> set[str]:
    """Unknown query names right after a secret's value: the tail of a secret that held an ``&``."""
    secret_names = {name for name, secret in platform_options().items() if secret}
    suspects: set[str] = set()
    after_secret = False
    for piece in raw_query.split("&"):
        option = urllib.parse.unquote_plus(piece.partition("=")[0])
        if option in known:
            after_secret = option in secret_names
        elif after_secret:
            suspects.add(option)
    return suspects


def _refuse_padded_secrets(cls: type[Destination], parts: urllib.parse.SplitResult,
                           values: Mapping[str, str]) -> None:
    secret_names = {option.name for option in cls.option_table() if option.secret}
    padded = [name for name, value in values.items() if name in secret_names and _padded(value)]
    if any(_padded(value) for value in cls.credentials(parts)):
        padded.append("the credential in the URL")
    if padded:
        raise ValueError(
            f"{', '.join(sorted(padded))}: the value starts or ends with whitespace or holds a line break, "
            "which a secret never does (copied with a newline?); remove it, e.g. "
            f"{cls.example}"
        )


def _padded(value: object) -> bool:
    return isinstance(value, str) and (value != value.strip() or "\n" in value or "\r" in value)


def _text_option(name: str, given: str | None, options: dict[str, str]) -> str | None:
    value = given if given is not None else options.get(name)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name}= must be a string, got {type(value).__name__}")
    return value or None


def _check_platform(platform: str | None) -> str | None:
    if platform is None:
        return None
    names = [name for cls in platform_classes() for name in cls.names]
    if not isinstance(platform, str) or platform.lower() not in names:
        raise ValueError(f"unknown platform {platform!r}: use one of {', '.join(names)}")
    return platform.lower()


def _own_path(path: str, cls: type[Destination]) -> bool:
    return any(path.startswith(prefix) or path.rstrip("/") == prefix.rstrip("/") for prefix in cls.paths)


def _pick_class(parts: urllib.parse.SplitResult, chosen: str | None) -> tuple[type[Destination], str]:
    """The platform a string names. ``platform=`` wins on a path no platform owns; a scheme or a path
    that names another platform is a contradiction, refused naming both."""
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        cls = _scheme_class(scheme)
        if cls is None:
            shown = f"{scheme}://" if scheme else "a URL without a scheme"
            raise ValueError(f"unknown destination {shown}: use a platform's webhook URL "
                             f"or e.g. {_examples()}")
        if chosen is not None and chosen != scheme:
            raise ValueError(f"platform={chosen!r} contradicts the destination's scheme {scheme}://: "
                             f"drop one of them; e.g. {cls.example}")
        return cls, scheme
    classes = platform_classes()  # by host or path: every platform's forms are needed
    host = (parts.hostname or "").lower()
    on_path = [cls for cls in classes if _own_path(parts.path, cls)]
    if chosen is not None:
        owner = next((cls for cls in classes if chosen in cls.names), None)
        if on_path and owner not in on_path:
            own = on_path[0]
            raise ValueError(f"platform={chosen!r} contradicts the URL's path, which is {own.names[0]}'s "
                             f"({own.paths[0]}…): drop platform= or fix the URL; e.g. {own.example}")
        if owner is not None:
            return owner, chosen
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
            f"base_url= must look like http://127.0.0.1:8080 (scheme and host), got {mask_urls(value)!r}; "
            f"e.g. {cls.example} with base_url=http://127.0.0.1:8080"
        )
    return f"{parts.scheme}://{parts.netloc}"
