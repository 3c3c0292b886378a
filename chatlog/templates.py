"""The template of an already formatted message: the message with its values replaced by ``<*>``.

Used for records logged without ``%``-arguments (f-strings, ``str.format``, loguru, messages built by
libraries), whose template is lost by the time chatlog sees them. `template_of` is a pure function of
the message: no learning and no state shared between messages, so every process of a fleet puts a
record in the same group whatever it saw before and in whatever order records arrive.

How a value is recognised (each rule is about what a value looks like, not about one log source):

1. whole values whose inside holds punctuation: quoted text without spaces (or after ``=``), URLs,
   e-mail addresses, file-system paths (POSIX and Windows);
2. then the rest is cut into tokens at spaces and punctuation, and a token is a value when it holds a
   digit (numbers, sizes, durations, times, versions, IPs and ports, hex and block ids), is a host or
   package name (``db.example.com``, ``com.android.phone``), a file name (``app.log``), a hex run
   without digits (``ffffffff``), a weekday or month name next to a number, or a user name right after
   ``invalid user``/``for user``/``password for``;
3. neighbouring values (``Sun Jul 10 04:18:34 2005``) become one ``<*>``, and runs of spaces one space.
"""

from __future__ import annotations

import re
from functools import lru_cache

from chatlog._lazy import lazy_pattern

WILDCARD = "<*>"
INPUT_LIMIT_CHARS = 1_000
"""Only this much of a message is read: a template is about its start, and the cost stays bounded."""
_READ = INPUT_LIMIT_CHARS + 1  # one more: `_head` must know whether the message was cut
OUTPUT_LIMIT_CHARS = 500
CACHE_SIZE = 1_024
"""Templates remembered by each of the two caches of `template_of` (keys of at most 1,001 characters)."""



# Values whose inside holds delimiters, replaced as a whole before the message is cut into words; each
# pattern runs only when the message holds its marker character (most messages hold none).
_QUOTED_VALUE = lazy_pattern(r"""(?<==)(?:'[^'\n]*'|"[^"\n]*")""")  # key='value', tag="View Lock"
_URL = lazy_pattern(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>()\[\]{},]+")
_EMAIL = lazy_pattern(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# (No pattern counts digits: see template_of.)
_IPV6 = lazy_pattern(r"(?<![\w:.])(?=[0-9a-fA-F:]*::|(?:[0-9a-fA-F]+:){7})[0-9a-fA-F:]+(?![\w:])")
_PATH = lazy_pattern(
    r"(?<![\w/.~\\])(?:[~.]{0,2}/[\w.@%+~$=&?-]+){2,}/?"  # POSIX paths, two parts or more
    r"|(?<!\w)[A-Za-z]:\\[^\s'\"<>|,;]*"  # Windows paths
)
# Token boundaries: a token is a run of characters that are not delimiters (delimiters stay as they are).
_D = r"\s,;:()\[\]{}<>=|\"'`"
_T = f"[^{_D}]"
_START, _END = f"(?<!{_T})", f"(?!{_T})"
_TLDS = "com|net|org|edu|gov|mil|int|info|biz|io|local|internal|lan|arpa"
_LABEL = "[a-z][a-z0-9_-]*"
_FILE_TYPES = (
    "exe|dll|so|dylib|jar|war|class|py|pyc|js|ts|rb|go|java|c|h|cpp|log|txt|json|yaml|yml|toml|ini|cfg|"
    "conf|xml|html|htm|css|csv|tsv|md|rst|pdf|png|jpg|jpeg|gif|svg|zip|gz|tgz|bz2|xz|tar|sql|db|sqlite|"
    "sh|bat|ps1|pem|crt|key|lock|pid|sock|tmp|bak|dat|bin|img|iso"
)
_DIGIT = lazy_pattern(r"\d")
_DATE_NAMES = (
    "mon|tue|wed|thu|fri|sat|sun|monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
    "jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|january|february|march|april|june|july|"
    "august|september|october|november|december"
)
_VALUE_WORD = lazy_pattern(
    rf"""
      {_T}*\d{_T}*                                                 # holds a digit: 42, 2.5s, 317e46, blk_-12
    | [a-f]{{8,}} | [A-F]{{8,}}                                    # hex without digits: ffffffff
    | (?:(?:{_LABEL}\.)+(?:{_TLDS})                                # host names: db.example.com
       | (?:{_TLDS}|android)(?:\.{_LABEL})+                         # packages: com.android.phone
       | {_LABEL}(?:\.{_LABEL})+\.[a-z]{{2}}                        # country hosts: mail.example.co.uk
      )(?:/{_T}*)?
    | (?:{_TLDS}|android)(?:\.[A-Za-z_$][\w$-]*)+/{_T}*             # components: com.tencent.mm/.Main
    | [\w-]+\.(?i:{_FILE_TYPES})                                    # file names: app.log
    """,
    re.VERBOSE,
)
_WORDS = lazy_pattern(f"({_T}+)")


def _cases(*names: str) -> frozenset[str]:
    return frozenset(case for name in names for case in (name, name.title(), name.upper()))


_SIZE_UNITS = "B|KB|kB|MB|GB|TB|PB|KiB|MiB|GiB|TiB"
_TIME_UNITS = ("ms|us|µs|ns|s|sec|secs|second|seconds|min|mins|minute|minutes|h|hr|hrs|hour|hours|day|days|"
               "millisecond|milliseconds|microsecond|microseconds")
_UNITS = frozenset(f"{_SIZE_UNITS}|{_TIME_UNITS}".split("|"))
_DATE_WORDS = _cases(*_DATE_NAMES.split("|"))
_USER_WORDS = _cases("user")
_USER_CONTEXT = _cases("for", "invalid", "unknown", "illegal", "no")
_CREDENTIAL_WORDS = _cases("for")
_CREDENTIAL_CONTEXT = _cases("password", "passphrase", "publickey", "keyboard-interactive", "none")
_EMPTY_PARENS = lazy_pattern(r"(?:^|(?<=\s))\(\)")  # "from 10.0.0.1 () at": a value empty this time
_NEIGHBOURS = lazy_pattern(r"<\*>(?:[\s,:;./\-_#@+]*<\*>)+")
_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_DIGIT_RUN = lazy_pattern("[0-9]+")


def template_of(message: str) -> str:
    """`message` with its values replaced by ``<*>``; the same message always gives the same template.

    ``"order 123 failed after 2.5s"`` and ``"order 456 failed after 0.1s"`` give
    ``"order <*> failed after <*>"``; messages that differ in a word keep different templates. The result
    is at most `OUTPUT_LIMIT_CHARS` long. Never raises for a ``str``.
    """
    # No rule reads which digits a number has, nor (within INPUT_LIMIT_CHARS) how many: messages that
    # differ only in their numbers have one template. Two caches use that: the first is keyed by the
    # message with every digit made "0" (a bytes.translate: ~4,000 instructions a hit), the second, on a
    # miss, by each run of digits made one "0" (ids of another length); only then is `extract` run.
    return _by_digit_positions(message[:_READ].encode("utf-8", "surrogatepass").translate(_ZEROS))


def extract(message: str) -> str:
    """`template_of` without its cache (for tests and benchmarks of the first record of a template)."""
    text = _head(message)
    if "='" in text or '="' in text:
        text = _QUOTED_VALUE.sub(_quoted_value, text)
    if "://" in text:
        text = _URL.sub(WILDCARD, text)
    if "@" in text:
        text = _EMAIL.sub(WILDCARD, text)
    if "::" in text or text.count(":") >= 7:
        text = _IPV6.sub(WILDCARD, text)
    if "/" in text or "\\" in text:
        text = _PATH.sub(WILDCARD, text)
    if "()" in text:
        text = _EMPTY_PARENS.sub(" (<*>)", text)
    parts = _WORDS.split(text)  # gap, word, gap, word, ..., gap
    out = parts.copy()
    fullmatch = _VALUE_WORD.fullmatch
    for i in range(1, len(parts), 2):
        word = parts[i]
        # Most words are plain letters, too short to be hex: no regular expression for them.
        if not (word.isalpha() and len(word) < 8) and fullmatch(word):
            out[i] = WILDCARD
        elif word in _DATE_WORDS:
            if _near_value(parts, i):
                out[i] = WILDCARD
        elif parts[i - 1] != " " or i < 3:
            continue
        elif word in _UNITS:  # "5.3 KB" and "384.0 B", "2 minutes" and "30 seconds": one value each
            if _DIGIT.search(parts[i - 2]):
                out[i] = WILDCARD
        elif i > 3 and _is_named(parts[i - 2], parts[i - 4]):
            out[i] = WILDCARD
    return _NEIGHBOURS.sub(WILDCARD, " ".join("".join(out).split()))[:OUTPUT_LIMIT_CHARS]


@lru_cache(maxsize=CACHE_SIZE)
def _by_digit_positions(key: bytes) -> str:
    text = key.decode("utf-8", "surrogatepass")
    if len(text) > INPUT_LIMIT_CHARS:  # the cut depends on lengths: no collapsing here
        return extract(text)
    return _by_digit_runs(_DIGIT_RUN.sub("0", text))


@lru_cache(maxsize=CACHE_SIZE)
def _by_digit_runs(key: str) -> str:
    return extract(key)


def _near_value(parts: list[str], i: int) -> bool:
    """A weekday or month name is a value next to a number (``Sun Jul 10``), a word otherwise (``May``)."""
    return any(_DIGIT.search(parts[j]) for j in range(max(i - 4, 1), min(i + 5, len(parts)), 2))


def _is_named(before: str, before_that: str) -> bool:
    """After ``invalid user``/``for user`` comes a user name; after ``password for`` an account."""
    if before in _USER_WORDS:
        return before_that in _USER_CONTEXT
    return before in _CREDENTIAL_WORDS and before_that in _CREDENTIAL_CONTEXT


def _head(message: str) -> str:
    """The first `INPUT_LIMIT_CHARS` of `message`, without the word the cut went through."""
    if len(message) <= INPUT_LIMIT_CHARS:
        return message
    head = message[:INPUT_LIMIT_CHARS]
    return head[: max(head.rfind(" "), 0)] or head


def _quoted_value(match: re.Match[str]) -> str:
    quote = match.group()[0]
    return quote + WILDCARD + quote
