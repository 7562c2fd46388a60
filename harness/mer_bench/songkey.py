"""Song keys: one key per song, so the same song under two ids never sits on both sides of a split.

The key is the normalised artist and title: accents folded, case and punctuation
removed, "feat." credits dropped. Tracks without both an artist and a title get a key
of their own (their uid), so they group with nothing.
"""

from __future__ import annotations

import re
import unicodedata

import pandas as pd

_FEAT = re.compile(r"[\(\[]?\b(feat|ft|featuring)\b\.?.*$", flags=re.I)
_NON_WORD = re.compile(r"[\W_]+", flags=re.UNICODE)


def normalise(text: str) -> str:
    """Lower-case words of ``text`` with accents folded and punctuation removed."""
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", folded.lower()).strip()


def song_key(artist: object, title: object) -> str | None:
    """``artist|title`` normalised, or None when either is unknown."""
    if not isinstance(artist, str) or not isinstance(title, str):
        return None
    artist_n = normalise(_FEAT.sub("", artist))
    title_n = normalise(_FEAT.sub("", title))
    if not artist_n or not title_n:
        return None
    return f"{artist_n}|{title_n}"


def song_keys(tracks: pd.DataFrame, uids: pd.Series) -> pd.Series:
    """A song key per row: the loader's ``song_key`` if given, else from artist and title, else the uid."""
    given = tracks["song_key"] if "song_key" in tracks.columns else pd.Series(None, index=tracks.index)
    derived = pd.Series([song_key(a, t) for a, t in zip(tracks["artist"], tracks["title"])], index=tracks.index)
    return given.where(given.notna(), derived).where(lambda k: k.notna(), uids)
