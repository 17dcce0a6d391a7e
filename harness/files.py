"""Files a paper scale reads from a plain URL, pinned by their SHA-256: a paper's own data as its authors released it
in their code repository (the exact example or subset they trained on), fetched on the head node like hub items.

    configs/datasets/<name>.yaml   source: url, url: https://raw.githubusercontent.com/<org>/<repo>/<commit>/<path>,
                                   sha256: <64 hex digits>

`harness fetch` downloads each file into the hub cache under files/<sha256>/<file name>, refusing content whose
digest differs from the pin; offline jobs read that copy only (harness.offline.offline_stage). `harness fetch --pin`
writes the digest of an unpinned file's current content into its config.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from harness.config.errors import FetchError

SHA256 = re.compile(r"[0-9a-f]{64}")
FORMATS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}
"""File suffix -> the `datasets` builder that reads it; a text format may come gzipped (`.jsonl.gz`)."""
PIN_HINT = "run `harness fetch --pin` on a machine that reaches it (it writes the file's SHA-256)"


def file_name(url: str) -> str:
    """The last segment of the URL's path.

    >>> file_name("https://raw.githubusercontent.com/o/r/0123/data/train/pi1_r128.parquet")
    'pi1_r128.parquet'
    """
    return Path(urlparse(url).path).name


def url_problem(url: str) -> str | None:
    """What is wrong with a data file's URL (None: nothing).

    >>> url_problem("ftp://x/a.parquet")
    "must be an http(s) URL, got 'ftp://x/a.parquet'"
    >>> url_problem("https://x/a.txt")
    "must end in one of .parquet, .jsonl, .json, .csv (the format read; text formats may add .gz), got 'a.txt'"
    >>> url_problem("https://x/wiki-18.jsonl.gz"), url_problem("https://x/a.parquet.gz") is None
    (None, False)
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return f"must be an http(s) URL, got {url!r}"
    if _suffix(parsed.path) not in FORMATS or (parsed.path.endswith(".gz") and _suffix(parsed.path) == ".parquet"):
        return (f"must end in one of {', '.join(FORMATS)} (the format read; text formats may add .gz), "
                f"got {file_name(url)!r}")  # fmt: skip
    return None


def _suffix(path: str) -> str:
    """The format's suffix of a file name, a compression's `.gz` looked past."""
    p = Path(path)
    return Path(p.stem).suffix if p.suffix == ".gz" else p.suffix


def file_format(url: str) -> str:
    return FORMATS[_suffix(urlparse(url).path)]


def cached(root: Path, url: str, sha256: str) -> Path:
    """Where the pinned file lies in the cache `root`."""
    return Path(root) / "files" / sha256 / file_name(url)


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def local_file(root: Path, url: str, sha256: str | None, where: str = "") -> Path:
    """The cached copy of a pinned file (offline jobs); FetchError when it is not there."""
    if not sha256:
        raise FetchError(f"file {url} has no pinned sha256{where}: {PIN_HINT}")
    path = cached(root, url, sha256)
    if not path.is_file():
        raise FetchError(f"file {url} (sha256 {sha256[:12]}...) is not in the cache {root}{where}: "
                         "run `harness fetch` on the head node")  # fmt: skip
    return path


def _download(url: str, folder: Path) -> Path:
    """`url`'s content in a new temporary file under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise FetchError(f"file {url} cannot be downloaded: {e}") from None
    return Path(tmp)


def download(url: str, sha256: str, root: Path) -> Path:
    """Fetch a pinned file into the cache (none of the network when a good copy is there); its path."""
    path = cached(root, url, sha256)
    if path.is_file() and digest(path) == sha256:
        return path
    tmp = _download(url, path.parent)
    got = digest(tmp)
    if got != sha256:
        tmp.unlink()
        raise FetchError(f"file {url} has sha256 {got}, not the pinned {sha256}: its content changed (pin a URL "
                         "holding a commit, or re-pin after checking the new content)")  # fmt: skip
    tmp.replace(path)
    return path


def current_digest(url: str) -> str:
    """The SHA-256 of what `url` serves now (downloads it once)."""
    with tempfile.TemporaryDirectory() as tmp:
        return digest(_download(url, Path(tmp)))
