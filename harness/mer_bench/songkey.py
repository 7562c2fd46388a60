"""Song keys: one key per song, so the same song under two ids never sits on both sides of a split.

The key is the normalised artist and title: accents folded, case and punctuation
removed, "feat." credits dropped. A loader may also give a key of its own (a song id that two
releases share); tracks sharing either key are one song. Tracks with neither get a key of
their own (their uid), so they group with nothing.
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
    """A song key per row, joining rows that share any key: the loader's ``song_key`` (such as
    a song id two releases share) or the key from artist and title.

    Two rows are one song when they share either key, directly or through other rows, so a
    loader's id and the artist/title match both hold across datasets. The key of a song is
    the smallest key among its rows; a row with neither key is a song of its own (its uid).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    given = tracks["song_key"] if "song_key" in tracks.columns else pd.Series(None, index=tracks.index)
    derived = [song_key(a, t) for a, t in zip(tracks["artist"], tracks["title"])]
    candidates = [
        sorted({k for k in (g, d) if isinstance(k, str) and k})
        for g, d in zip(given.where(given.notna(), None), derived)
    ]
    names = sorted({k for keys in candidates for k in keys})
    node = {k: len(candidates) + i for i, k in enumerate(names)}
    edges = [(row, node[k]) for row, keys in enumerate(candidates) for k in keys]
    size = len(candidates) + len(names)
    rows, cols = zip(*edges) if edges else ((), ())
    graph = coo_matrix(([1] * len(edges), (rows, cols)), shape=(size, size))
    _, component = connected_components(graph, directed=False)
    smallest: dict[int, str] = {}
    for k in names:  # sorted, so the first key seen per component is its smallest
        smallest.setdefault(component[node[k]], k)
    keys = [smallest[component[row]] if candidates[row] else uid for row, uid in enumerate(uids)]
    return pd.Series(keys, index=tracks.index)
