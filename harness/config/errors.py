"""Refusals of configuration: every one names the file and the full dotted key it concerns."""

from __future__ import annotations

from pathlib import Path

from harness.layout import ROOT


class ConfigError(ValueError):
    """Bad configuration, with the file and the key it concerns."""

    def __init__(self, file: Path | str, key: str, message: str) -> None:
        self.file, self.key, self.message = str(file), key, message
        super().__init__(f"{_rel(file)}: {key or '<top level>'}: {message}")


class Invalid(ValueError):
    """A problem found by a check that does not know the file: `key` is relative to what it was given.

    The loader turns it into a ConfigError with the file and the full key (`ConfigError` wraps `prefix.key`).
    """

    def __init__(self, key: str, message: str) -> None:
        self.key, self.message = key, message
        super().__init__(f"{key}: {message}" if key else message)

    def at(self, file: Path | str, prefix: str) -> ConfigError:
        return ConfigError(file, ".".join(p for p in (prefix, self.key) if p), self.message)


class FetchError(Exception):
    """An item a paper scale reads that cannot be fetched or found (unpinned, gated without a token, a digest that
    differs from its pin, absent from the cache offline): harness/hub.py, harness/offline.py, harness/files.py."""


def _rel(path: Path | str) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
