"""A realistic web session store, for demos, tests and benchmarks.

`populate_session_store` fills a Redis server with what a web application's
session Redis holds: `session:<uuid-hex>` strings whose values look like
encrypted tokens (Fernet-style base64url or raw AES-GCM nonce+ciphertext+tag,
200 B to 4 KB with a long tail), most with a TTL from minutes to weeks, plus per
user a profile hash, a set of session ids, an activity list, CSRF tokens,
rate-limit sorted sets and a few large leaderboards.

Unlike `DEBUG POPULATE`, the values are random bytes, so they do not compress
much: the RDB and the compressors see what a production session store gives them.

Everything is derived from `seed` (keys, values, TTLs, sizes), so two servers
filled with the same seed and the same size hold the same data, apart from the
absolute expiry times, which are relative to the moment of writing.

Commands are packed into RESP by hand and pipelined in batches over one of the
client's connections, with one batch in flight while the next is generated:
about 3x faster than redis-py's pipeline. The client's AUTH, TLS and database
selection apply, since its own connection is used.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

# Plaintext sizes are log-normal around ~500 B (a serialised session: user id,
# roles, flash messages, cart ...); values are clipped to 200 B - 4 KB.
_MIN_VALUE = 200
_MAX_VALUE = 4096
_PLAINTEXT_MEDIAN = 480.0
_PLAINTEXT_SIGMA = 0.75
_FERNET_SHARE = 0.65  # the rest are raw AES-GCM blobs

# Sessions per user: most users have one or two devices, a few have many.
_SESSIONS_PER_USER = (1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 6, 9)

_LEADERBOARDS = ("leaderboard:daily", "leaderboard:weekly", "leaderboard:monthly", "leaderboard:alltime")
_LOCALES = ("en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "pt-BR", "ja-JP", "nl-NL", "pl-PL", "it-IT")
_PLANS = ("free", "free", "free", "pro", "pro", "team", "enterprise")
_FIRST = (
    "anna",
    "ben",
    "chen",
    "dana",
    "eli",
    "fatima",
    "georg",
    "hana",
    "ivan",
    "jonas",
    "kim",
    "lena",
    "marco",
    "nina",
    "omar",
    "paula",
    "quinn",
    "rosa",
    "sven",
    "tariq",
    "ute",
    "vera",
)
_LAST = (
    "schmidt",
    "müller",
    "garcia",
    "smith",
    "nguyen",
    "kowalski",
    "rossi",
    "dubois",
    "tanaka",
    "silva",
    "jansen",
    "berg",
    "novak",
    "costa",
    "weber",
    "ivanova",
    "okafor",
    "haddad",
)
_DOMAINS = ("example.com", "mail.example.org", "corp.example.net", "example.de", "example.fr")
_EVENTS = (
    "login",
    "logout",
    "view_page",
    "add_to_cart",
    "checkout",
    "update_profile",
    "password_change",
    "api_call",
    "search",
    "download",
)
_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)",
    "Mozilla/5.0 (X11; Linux x86_64)",
    "okhttp/4.12.0",
    "python-requests/2.32",
)

# A fixed epoch for timestamps inside values, so that content is deterministic.
_EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z

# Per-entry overhead in the RDB beyond key and value bytes (type, length prefixes,
# expire opcode + 8-byte ms timestamp). Calibrated against real dumps.
_STRING_OVERHEAD = 4
_EXPIRE_OVERHEAD = 9
# Small hashes, sets, lists and sorted sets are saved as one LZF-compressed
# listpack; the profile and activity text compresses to about this share.
_LISTPACK_RATIO = 0.62

_BATCH_BYTES = 4 << 20
_BATCH_COMMANDS = 20_000


@dataclass
class SessionStoreSummary:
    """What `populate_session_store` wrote."""

    sessions: int = 0
    csrf_tokens: int = 0
    users: int = 0
    session_sets: int = 0
    activity_lists: int = 0
    ratelimit_zsets: int = 0
    leaderboards: int = 0
    keys_with_ttl: int = 0
    estimated_rdb_bytes: int = 0
    seed: int = 0
    _leaderboard_names: set[str] = field(default_factory=set, repr=False)

    @property
    def strings(self) -> int:
        """`session:*` and `csrf:*` keys."""
        return self.sessions + self.csrf_tokens

    @property
    def hashes(self) -> int:
        """`user:<id>` profile hashes."""
        return self.users

    @property
    def sets(self) -> int:
        """`user:<id>:sessions` sets."""
        return self.session_sets

    @property
    def zsets(self) -> int:
        """`ratelimit:<ip>` and `leaderboard:*` sorted sets."""
        return self.ratelimit_zsets + self.leaderboards

    @property
    def lists(self) -> int:
        """`activity:<id>` lists."""
        return self.activity_lists

    @property
    def total_keys(self) -> int:
        """All keys written."""
        return self.strings + self.hashes + self.sets + self.zsets + self.lists

    def by_type(self) -> dict[str, int]:
        """Key counts by Redis type name, as `TYPE` reports them."""
        return {
            "string": self.strings,
            "hash": self.hashes,
            "set": self.sets,
            "zset": self.zsets,
            "list": self.lists,
        }


def _resp(*args: bytes) -> bytes:
    """Encode one command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class _Generator:
    """Yields (packed command, estimated RDB bytes) for one user at a time."""

    def __init__(self, seed: int, summary: SessionStoreSummary) -> None:
        self.rng = random.Random(seed)
        self.summary = summary
        self.user_id = 0

    def _uuid_hex(self) -> bytes:
        # uuid4 layout: version nibble 4, variant bits 10.
        n = self.rng.getrandbits(128)
        n = (n & ~(0xF000 << 64)) | (0x4000 << 64)
        n = (n & ~(0xC000 << 48)) | (0x8000 << 48)
        return b"%032x" % n

    def _session_value(self) -> bytes:
        rng = self.rng
        plain = int(rng.lognormvariate(0.0, _PLAINTEXT_SIGMA) * _PLAINTEXT_MEDIAN)
        if rng.random() < _FERNET_SHARE:
            # Fernet: 0x80 | ts(8) | iv(16) | AES-CBC ciphertext (PKCS7) | HMAC-SHA256(32), base64url.
            ct_len = (plain // 16 + 1) * 16
            raw_len = 1 + 8 + 16 + ct_len + 32
            b64_len = (raw_len + 2) // 3 * 4
            if b64_len > _MAX_VALUE:
                raw_len = _MAX_VALUE // 4 * 3
            elif b64_len < _MIN_VALUE:
                raw_len = (_MIN_VALUE + 3) // 4 * 3
            ts = (_EPOCH + rng.randrange(86_400 * 30)).to_bytes(8, "big")
            return base64.urlsafe_b64encode(b"\x80" + ts + rng.randbytes(raw_len - 9))
        # AES-GCM: nonce(12) | ciphertext | tag(16), stored raw.
        size = min(max(12 + plain + 16, _MIN_VALUE), _MAX_VALUE)
        return rng.randbytes(size)

    def _session_ttl(self) -> int | None:
        r = self.rng.random()
        if r < 0.30:  # guest / short-lived sessions
            return self.rng.randrange(20 * 60, 2 * 3600)
        if r < 0.78:  # ordinary logged-in sessions
            return self.rng.randrange(2 * 3600, 24 * 3600)
        if r < 0.95:  # "remember me"
            return self.rng.randrange(86_400, 30 * 86_400)
        return None  # legacy sessions written without a TTL

    def user(self) -> Iterator[tuple[bytes, int]]:
        """Commands for one more user, with their sessions and side keys."""
        rng, s = self.rng, self.summary
        self.user_id += 1
        uid = b"%d" % self.user_id
        s.users += 1

        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        created = _EPOCH - rng.randrange(86_400 * 1500)
        profile = {
            b"email": f"{first}.{last}{rng.randrange(1000)}@{rng.choice(_DOMAINS)}".encode(),
            b"name": f"{first.title()} {last.title()}".encode(),
            b"locale": rng.choice(_LOCALES).encode(),
            b"plan": rng.choice(_PLANS).encode(),
            b"created_at": b"%d" % created,
            b"last_login": b"%d" % (_EPOCH - rng.randrange(86_400 * 30)),
            b"login_count": b"%d" % rng.randrange(1, 5000),
            b"mfa": b"totp" if rng.random() < 0.4 else b"none",
            b"avatar": b"https://cdn.example.com/a/%s.png" % self._uuid_hex()[:16],
        }
        args = [b"HSET", b"user:" + uid]
        for k, v in profile.items():
            args += [k, v]
        size = sum(len(k) + len(v) + 2 for k, v in profile.items())
        yield _resp(*args), len(args[1]) + _STRING_OVERHEAD + int(size * _LISTPACK_RATIO)

        session_ids: list[bytes] = []
        longest_ttl = 0
        for _ in range(rng.choice(_SESSIONS_PER_USER)):
            sid = self._uuid_hex()
            session_ids.append(sid)
            key = b"session:" + sid
            value = self._session_value()
            ttl = self._session_ttl()
            s.sessions += 1
            est = len(key) + len(value) + _STRING_OVERHEAD
            if ttl is None:
                yield _resp(b"SET", key, value), est
            else:
                s.keys_with_ttl += 1
                longest_ttl = max(longest_ttl, ttl)
                yield _resp(b"SET", key, value, b"EX", b"%d" % ttl), est + _EXPIRE_OVERHEAD
            if rng.random() < 0.10:
                token = base64.urlsafe_b64encode(rng.randbytes(32)).rstrip(b"=")
                s.csrf_tokens += 1
                s.keys_with_ttl += 1
                ckey = b"csrf:" + token
                ttl_csrf = b"%d" % rng.randrange(10 * 60, 3600)
                yield (
                    _resp(b"SET", ckey, sid, b"EX", ttl_csrf),
                    len(ckey) + len(sid) + _STRING_OVERHEAD + _EXPIRE_OVERHEAD,
                )

        set_key = b"user:" + uid + b":sessions"
        s.session_sets += 1
        yield _resp(b"SADD", set_key, *session_ids), len(set_key) + _STRING_OVERHEAD + 34 * len(session_ids)
        if longest_ttl:
            s.keys_with_ttl += 1
            yield _resp(b"EXPIRE", set_key, b"%d" % longest_ttl), _EXPIRE_OVERHEAD

        if rng.random() < 0.5:
            list_key = b"activity:" + uid
            events = []
            ts = _EPOCH - rng.randrange(86_400 * 7)
            for _ in range(rng.randrange(1, 25)):
                ts += rng.randrange(1, 3600)
                events.append(
                    b'{"ts":%d,"event":"%s","ip":"%s","ua":"%s"}'
                    % (ts, rng.choice(_EVENTS).encode(), self._ip(), rng.choice(_AGENTS).encode())
                )
            s.activity_lists += 1
            s.keys_with_ttl += 1
            yield (
                _resp(b"RPUSH", list_key, *events),
                len(list_key) + _STRING_OVERHEAD + int(sum(len(e) + 2 for e in events) * _LISTPACK_RATIO),
            )
            yield _resp(b"EXPIRE", list_key, b"%d" % (7 * 86_400)), _EXPIRE_OVERHEAD

        if rng.random() < 0.2:
            rl_key = b"ratelimit:" + self._ip()
            now_ms = (_EPOCH + rng.randrange(86_400)) * 1000
            members = []
            for i in range(rng.randrange(1, 20)):
                t = now_ms + i * rng.randrange(50, 3000)
                members += [b"%d" % t, b"%d-%d" % (t, rng.randrange(1 << 20))]
            s.ratelimit_zsets += 1
            s.keys_with_ttl += 1
            yield (
                _resp(b"ZADD", rl_key, *members),
                len(rl_key) + _STRING_OVERHEAD + int(sum(len(m) + 2 for m in members) * _LISTPACK_RATIO),
            )
            yield _resp(b"EXPIRE", rl_key, b"%d" % rng.randrange(5 * 60, 3600)), _EXPIRE_OVERHEAD

        if rng.random() < 0.3:
            board = rng.choice(_LEADERBOARDS)
            if board not in s._leaderboard_names:
                s._leaderboard_names.add(board)
                s.leaderboards += 1
            member = b"user:" + uid
            # Large sorted sets are saved member by member: member, 8-byte score, lengths.
            yield (
                _resp(b"ZADD", board.encode(), b"%d" % rng.randrange(1_000_000), member),
                len(member) + 8 + 2,
            )

    def _ip(self) -> bytes:
        r = self.rng.getrandbits(32)
        return b"%d.%d.%d.%d" % (10 + r % 200, (r >> 8) & 255, (r >> 16) & 255, (r >> 24) & 255)


def populate_session_store(
    client: redis.Redis,
    *,
    sessions: int | None = None,
    target_rdb_bytes: int | None = None,
    seed: int = 0,
) -> SessionStoreSummary:
    """Fill `client`'s database with a session store; return what was written.

    Give either `sessions` (stop after at least that many `session:*` keys: the
    last user's sessions are completed) or `target_rdb_bytes` (stop when the
    estimated RDB size, with the server's default LZF compression, reaches it;
    the estimate is within a few percent). With neither, 10,000 sessions.
    User ids count from 1, so filling the same database twice with different
    seeds overwrites the users' keys.
    """
    if sessions is not None and target_rdb_bytes is not None:
        raise ValueError("give either sessions or target_rdb_bytes, not both")
    if sessions is None and target_rdb_bytes is None:
        sessions = 10_000
    summary = SessionStoreSummary(seed=seed)
    gen = _Generator(seed, summary)
    # Redis header, aux fields, db selector and checksum.
    summary.estimated_rdb_bytes = 200

    def done() -> bool:
        if sessions is not None:
            return summary.sessions >= sessions
        assert target_rdb_bytes is not None
        return summary.estimated_rdb_bytes >= target_rdb_bytes

    conn = client.connection_pool.get_connection()
    in_flight = 0
    try:
        while not done():
            batch: list[bytes] = []
            batch_bytes = 0
            while not done() and batch_bytes < _BATCH_BYTES and len(batch) < _BATCH_COMMANDS:
                for command, est in gen.user():
                    batch.append(command)
                    batch_bytes += len(command)
                    summary.estimated_rdb_bytes += est
            _read_replies(conn, in_flight)
            conn.send_packed_command([b"".join(batch)], check_health=False)  # type: ignore[no-untyped-call]
            in_flight = len(batch)
        _read_replies(conn, in_flight)
    except BaseException:
        # Replies may still be pending: never hand this connection back in use.
        conn.disconnect()  # type: ignore[no-untyped-call]
        raise
    finally:
        client.connection_pool.release(conn)
    return summary


def _read_replies(conn: redis.connection.AbstractConnection, count: int) -> None:
    """Read `count` replies; raise the first error reply after draining them all."""
    first_error: Exception | None = None
    for _ in range(count):
        try:
            conn.read_response()
        except redis.ResponseError as exc:
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
