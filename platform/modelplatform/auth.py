"""Optional API keys: ``Authorization: Bearer <key>`` on the model endpoints.

Keys come from ``API_KEYS`` (comma-separated) and/or ``API_KEYS_FILE`` (one per line, ``#`` comments).
Each entry is ``id:key`` or a bare ``key``; a bare key's id is ``key-`` plus the first 8 hex digits of
its sha256, so the id is stable and never reveals the key. The id, never the key, is recorded on the
audit row (``api_key_id``). With neither variable set, the service is open.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from modelplatform.errors import StartupError, Unauthorized

_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_KEY_RE = re.compile(r"^[\x21-\x7e]{8,512}$")  # printable ASCII without spaces, as a Bearer token must be
MAX_AUTHORIZATION_CHARS = 1024


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class ApiKeys:
    """The accepted keys, kept only as sha256 digests, each with its id."""

    entries: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, entries: list[tuple[str, str]]) -> ApiKeys:
        """Build from ``(where, entry)`` pairs; raises :class:`StartupError` naming every bad entry."""
        problems: list[str] = []
        parsed: list[tuple[str, bytes]] = []
        seen_ids: set[str] = set()
        seen_keys: set[bytes] = set()
        for where, entry in entries:
            key_id, sep, key = entry.partition(":")
            if not sep:
                key = entry
                key_id = "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]
            if not _ID_RE.match(key_id):
                problems.append(f"{where}: key id must be 1-64 letters, digits, '.', '_' or '-'")
                continue
            if not _KEY_RE.match(key):
                problems.append(f"{where} ({key_id}): key must be 8-512 printable ASCII characters without spaces")
                continue
            digest = _digest(key)
            if key_id in seen_ids or digest in seen_keys:
                problems.append(f"{where} ({key_id}): duplicate key id or key")
                continue
            seen_ids.add(key_id)
            seen_keys.add(digest)
            parsed.append((key_id, digest))
        if problems:
            raise StartupError(problems)
        return cls(tuple(parsed))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ApiKeys | None:
        """Keys from ``API_KEYS`` and ``API_KEYS_FILE``; ``None`` when neither is set.

        Raises :class:`StartupError` for an unreadable file, a malformed entry, or variables that are
        set but hold no key (an auth setting that silently leaves the service open is refused).
        """
        entries: list[tuple[str, str]] = []
        inline = env.get("API_KEYS", "")
        path = env.get("API_KEYS_FILE", "").strip()
        if not inline.strip() and not path:
            return None
        for n, item in enumerate(inline.split(","), 1):
            if item.strip():
                entries.append((f"API_KEYS entry {n}", item.strip()))
        if path:
            try:
                lines = Path(path).read_text("utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise StartupError([f"API_KEYS_FILE {path}: cannot read: {exc}"]) from None
            for n, line in enumerate(lines, 1):
                line = line.strip()
                if line and not line.startswith("#"):
                    entries.append((f"API_KEYS_FILE {path} line {n}", line))
        if not entries:
            raise StartupError(["API_KEYS/API_KEYS_FILE are set but hold no key"])
        return cls.parse(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def identify(self, authorization: str | None) -> str:
        """The id of the key in an ``Authorization: Bearer`` header. Raises :class:`Unauthorized`."""
        if not authorization:
            raise Unauthorized("this endpoint needs an API key: send Authorization: Bearer <key>")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(authorization) > MAX_AUTHORIZATION_CHARS:
            raise Unauthorized("the Authorization header must be 'Bearer <key>'")
        presented = _digest(token)
        found = None
        # compare against every key, without stopping early, so timing says nothing about which matched
        for key_id, digest in self.entries:
            if hmac.compare_digest(presented, digest):
                found = key_id
        if found is None:
            raise Unauthorized("unknown API key")
        return found
