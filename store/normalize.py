"""Normalisation of names and street names into search keys.

Keys are lower-case ASCII letters and single spaces, so that the same key comes out of the spellings
Norwegian registers and clients actually use for one name:

- case: ``NORDMANN`` = ``Nordmann``;
- the Norwegian letters, their Nordic/German twins and their ASCII spellings: æ/ä → ae; ø/ö → oe, and
  ``oe`` → o unless another e follows; å/aa → a; ü → u (so ``Åsen`` = ``Aasen`` = ``Asen``, ``Ødegård`` =
  ``Oedegaard`` = ``Odegard``, ``Sæther`` = ``Saether``, ``Sjöberg`` = ``Sjoberg``). Both the stored keys
  and the asked ones are normalised the same way, so collapsing ``oe``/``aa`` costs a little precision
  (``Joensen`` = ``Jonsen``), which ranking recovers (:func:`fold` keeps the difference), and buys the
  recall that legacy ASCII registers need. An ø before an e keeps both (``Løen`` → ``loeen``, its ASCII
  spelling ``Loeen`` too): the e is a real letter, and ``Løen`` is not ``Lon``;
- other accents are dropped (``André`` = ``Andre``) by Unicode decomposition;
- hyphens, apostrophes and runs of white space become one space; other punctuation is dropped.

Plain ``unicodedata`` suffices here: the rules are Norwegian-specific (unidecode would turn ø into o
and å into a, losing the aa/oe spellings registers use).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["family_key", "fold", "name_key", "name_tokens", "street_key"]

_NORDIC = str.maketrans({"æ": "ae", "ä": "ae", "ø": "oe", "ö": "oe", "å": "a", "ü": "u", "ß": "ss",
                         "œ": "oe", "ð": "d", "þ": "th", "ł": "l", "đ": "d"})
_SPACE = re.compile(r"[\s\-‐‑–—'’`´.,/]+")
_DROP = re.compile(r"[^a-z ]")
_A_RUN = re.compile(r"a{2,}")
_OE = re.compile(r"oe(?!e)")  # the ASCII spelling of ø, unless a real e follows it (Løen = loeen)
_FOLD = str.maketrans({"ß": "ss", "œ": "oe", "ð": "d", "þ": "th", "ł": "l", "đ": "d"})


def name_key(text: str | None) -> str:
    """The search key of a name or name part ('' for None)."""
    if not text:
        return ""
    s = text.lower().translate(_NORDIC)
    s = unicodedata.normalize("NFKD", s)
    s = "".join(c for c in s if not unicodedata.combining(c))
    s = _SPACE.sub(" ", s)
    s = _A_RUN.sub("a", _DROP.sub("", s))
    while True:  # until none is left, so that a key normalises to itself
        t = _OE.sub("o", s)
        if t == s:
            break
        s = t
    return " ".join(s.split())


def fold(text: str | None) -> str:
    """A name folded for comparison, not for blocking: lower case, accents and punctuation dropped, but
    æ, ø, å and the spellings ``aa``/``oe`` kept apart (``Joensen`` ≠ ``Jonsen``, ``Åsen`` ≠ ``Aasen``), so two
    names with one :func:`name_key` can still be told apart when a choice between them hangs on it."""
    if not text:
        return ""
    s = unicodedata.normalize("NFKD", text.lower().translate(_FOLD))
    s = "".join(c for c in s if not unicodedata.combining(c) or c in "\u030a")  # keep å's ring
    s = unicodedata.normalize("NFC", s)
    s = _SPACE.sub(" ", s)
    return " ".join("".join(c for c in s if c == " " or c.isalpha()).split())


def name_tokens(text: str | None) -> list[str]:
    """The words of a name key: 'Anne-Marie Østby' → ['anne', 'marie', 'ostby']."""
    return name_key(text).split()


def family_key(text: str | None) -> str:
    """Key of a family name with its spaces removed, so 'Van der Berg' = 'Vanderberg'."""
    return name_key(text).replace(" ", "")


def street_key(text: str | None) -> str:
    """Key of a street name: 'Kirkeveien', 'Kirkevegen' and 'Kirkevn.' all give 'kirkev'."""
    key = name_key(text).replace(" ", "")
    for suffix in ("veien", "vegen", "vei", "veg", "vn", "gata", "gaten", "gt"):
        if key.endswith(suffix) and len(key) > len(suffix) + 2:
            stem = key[: -len(suffix)]
            return stem + ("v" if suffix.startswith("v") else "g")
    return key
