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

WILDCARD = "<*>"
INPUT_LIMIT_CHARS = 1_000
"""Only this much of a message is read: a template is about its start, and the cost stays bounded."""
OUTPUT_LIMIT_CHARS = 500
CACHE_SIZE = 4_096
"""Templates remembered by message text (a repeated message costs a dictionary look-up)."""



def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WHOLE = re.compile(
    r"""
      (?<==)(?:'[^'\n]{0,300}'|"[^"\n]{0,300}")                            # key='quoted value'
    | \b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'"<>()\[\]{},]+                     # URLs
    | [\w.+-]+@[\w-]+(?:\.[\w-]+)+                                        # e-mail addresses
    | (?<![\w/.~\\])(?:[~.]{0,2}/[\w.@%+~$=&?-]+){2,}/?                  # POSIX paths, two parts or more
    | (?<!\w)[A-Za-z]:\\[^\s'"<>|,;]*                                      # Windows paths
    """,
    re.VERBOSE,
)
# A token: a run of characters that are not delimiters. Delimiters stay as they are in the template.
_TOKEN = re.compile(r"[^\s,;:()\[\]{}<>=|\"'`]+")
_EMPTY_PARENS = re.compile(r"(?:^|(?<=\s))\(\)")  # "from 10.0.0.1 () at": a value empty this time
_SPACES = re.compile(r"\s+")
_DIGIT = re.compile(r"\d")
_NEIGHBOURS = re.compile(r"<\*>(?:[\s,:;./\-_#@+]*<\*>)+")
_HOST = re.compile(r"[a-z][a-z0-9_-]*(?:\.[a-z][a-z0-9_-]*)+")
_PACKAGE = re.compile(r"[a-z][a-z0-9_-]*(?:\.[A-Za-z_$][\w$-]*)+")
_FILE = re.compile(r"[\w-]+\.([A-Za-z]{1,5})")
_HEX_LETTERS = re.compile(r"[a-f]{8,}|[A-F]{8,}")
_TLDS = _names("com net org edu gov mil int info biz io local internal lan arpa")
_PACKAGE_ROOTS = _TLDS | {"android"}
_FILE_TYPES = _names(
    "exe dll so dylib jar war class py pyc js ts rb go java c h cpp log txt json yaml yml toml ini cfg "
    "conf xml html htm css csv tsv md rst pdf png jpg jpeg gif svg zip gz tgz bz2 xz tar sql db sqlite "
    "sh bat ps1 pem crt key lock pid sock tmp bak dat bin img iso")
_USER_CONTEXT = _names("for invalid unknown illegal no")
_CREDENTIALS = _names("password passphrase publickey keyboard-interactive none")
_DATE_NAMES = _names(
    "mon tue wed thu fri sat sun monday tuesday wednesday thursday friday saturday sunday "
    "jan feb mar apr may jun jul aug sep sept oct nov dec january february march april june july "
    "august september october november december")


@lru_cache(maxsize=CACHE_SIZE)
def template_of(message: str) -> str:
    """`message` with its values replaced by ``<*>``; the same message always gives the same template.

    ``"order 123 failed after 2.5s"`` and ``"order 456 failed after 0.1s"`` give
    ``"order <*> failed after <*>"``; messages that differ in a word keep different templates. The result
    is at most `OUTPUT_LIMIT_CHARS` long. Never raises for a ``str``.
    """
    text = _EMPTY_PARENS.sub(" (<*>)", _WHOLE.sub(_whole_value, _head(message)))
    gaps = _TOKEN.split(text)
    words = _TOKEN.findall(text)
    out = [gaps[0]]
    for i, word in enumerate(words):
        out.append(WILDCARD if _is_value(word, words, i, gaps) else word)
        out.append(gaps[i + 1])
    return _NEIGHBOURS.sub(WILDCARD, _SPACES.sub(" ", "".join(out)).strip())[:OUTPUT_LIMIT_CHARS]


def _head(message: str) -> str:
    """The first `INPUT_LIMIT_CHARS` of `message`, without the word the cut went through."""
    if len(message) <= INPUT_LIMIT_CHARS:
        return message
    head = message[:INPUT_LIMIT_CHARS]
    return head[: max(head.rfind(" "), 0)] or head


def _whole_value(match: re.Match[str]) -> str:
    text = match.group()
    return text[0] + WILDCARD + text[0] if text[0] in "'\"" else WILDCARD


def _is_value_alone(word: str) -> bool:
    """A value by its looks alone: it holds a digit, is a hex run, or a host, package or file name."""
    return bool(_DIGIT.search(word) or _HEX_LETTERS.fullmatch(word) or _is_name_of_a_thing(word))


def _is_value(word: str, words: list[str], i: int, gaps: list[str]) -> bool:
    if _is_value_alone(word):
        return True
    lower = word.lower()
    if lower in _DATE_NAMES:
        return any(_DIGIT.search(near) for near in words[max(i - 2, 0):i + 3])
    if i < 2 or gaps[i] != " ":
        return False
    before, before_that = words[i - 1].lower(), words[i - 2].lower()
    if before == "user":
        return before_that in _USER_CONTEXT
    return before == "for" and before_that in _CREDENTIALS


def _is_name_of_a_thing(word: str) -> bool:
    """Host, package or file names: ``db.example.com``, ``com.tencent.mm/.Main``, ``app.log``."""
    if "." not in word:
        return False
    head = word.split("/", 1)[0]
    if _HOST.fullmatch(head):
        labels = head.split(".")
        if labels[-1] in _TLDS or labels[0] in _PACKAGE_ROOTS or (len(labels) > 2 and len(labels[-1]) == 2):
            return True
    if _PACKAGE.fullmatch(head) and head.split(".", 1)[0] in _PACKAGE_ROOTS and "/" in word:
        return True
    file = _FILE.fullmatch(word)
    return file is not None and file.group(1).lower() in _FILE_TYPES
