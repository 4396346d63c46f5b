"""Reading redis.conf as redis-server does: quoting, `include`, last value wins, then arguments.

Only what redis-dr decides on is interpreted (port, bind, dir, dbfilename,
appendonly, appenddirname, appendfilename, save, requirepass, user); every other
directive is kept as the last value given. The password never appears in
`repr()` or messages.
"""

from __future__ import annotations

import glob
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from redis_dr.errors import ConfigError
from redis_dr.platforms.base import DataLayout

#: Directives that may appear several times and add up instead of replacing each other.
_REPEATABLE = {"save", "user", "include", "loadmodule", "rename-command"}
_MAX_INCLUDE_DEPTH = 16
#: Redis's directive names: letters, digits and dashes (`client-output-buffer-limit`).
_DIRECTIVE = re.compile(r"^[a-z][a-z0-9-]*$")
#: What C's isspace() calls space (Redis splits on these; Python's str.isspace() knows many more).
_SPACE = frozenset(" \t\n\v\f\r")
Reader = Callable[[str], str]
Globber = Callable[[str], list[str]]


def split_args(line: str) -> list[str]:
    """Split one config line into arguments as Redis's `sdssplitargs` does.

    Double quotes take `\\n`, `\\t`, `\\"`, `\\\\` and `\\xHH` escapes; single quotes only `\\'`.
    A closing quote must be followed by a space or the end. Raises ValueError when unbalanced.
    """
    args: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        current: list[str] = []
        quote = ""
        while i < n:
            char = line[i]
            if quote == '"':
                if char == "\\" and i + 3 < n and line[i + 1] == "x" and _is_hex(line[i + 2 : i + 4]):
                    current.append(chr(int(line[i + 2 : i + 4], 16)))
                    i += 3
                elif char == "\\" and i + 1 < n:
                    current.append(
                        {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}.get(line[i + 1], line[i + 1])
                    )
                    i += 1
                elif char == '"':
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        raise ValueError("closing quote must be followed by a space")
                    quote = ""
                    i += 1
                    break
                else:
                    current.append(char)
            elif quote == "'":
                if char == "\\" and i + 1 < n and line[i + 1] == "'":
                    current.append("'")
                    i += 1
                elif char == "'":
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        raise ValueError("closing quote must be followed by a space")
                    quote = ""
                    i += 1
                    break
                else:
                    current.append(char)
            elif char in _SPACE:
                break
            elif char in "\"'":
                quote = char
            else:
                current.append(char)
            i += 1
        if quote:
            raise ValueError("unbalanced quotes")
        args.append("".join(current))


def _is_hex(text: str) -> bool:
    return len(text) == 2 and all(c in "0123456789abcdefABCDEF" for c in text)


@dataclass
class RedisConfig:
    """The directives of a redis.conf (with its includes) and of command-line arguments."""

    #: Last value of each single-valued directive (lowercase name -> its arguments).
    values: dict[str, list[str]] = field(default_factory=dict)
    #: Every occurrence of repeatable directives (`save`, `user`, ...), in order.
    repeated: dict[str, list[list[str]]] = field(default_factory=dict)
    #: The files read, in order (the main file first).
    files: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"RedisConfig(files={self.files!r})"  # values hold requirepass

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first argument of the last `name` directive, or `default`."""
        args = self.values.get(name.lower())
        return args[0] if args else default

    def set(self, name: str, args: list[str]) -> None:
        """Record one directive as redis-server does (repeatables add up; `save ""` resets)."""
        name = name.lower()
        if name in _REPEATABLE:
            if name == "save" and args in ([""], []):
                self.repeated["save"] = []
                return
            self.repeated.setdefault(name, []).append(args)
        else:
            self.values[name] = args

    def apply_args(self, args: Sequence[str]) -> None:
        """Apply `redis-server [file] --name value ...` options (after the file, as Redis does)."""
        name: str | None = None
        collected: list[str] = []
        for arg in args:
            if arg.startswith("--") and len(arg) > 2:
                if name is not None:
                    self.set(name, collected)
                name, collected = arg[2:], []
            elif name is not None:
                collected.append(arg)
        if name is not None:
            self.set(name, collected)

    @property
    def port(self) -> int:
        """The TCP port (0: TCP disabled)."""
        return _int(self.get("port", "6379"), "port")

    @property
    def bind(self) -> list[str]:
        """Addresses it listens on (Redis's default without a `bind` line: every interface)."""
        return self.values.get("bind") or ["*", "-::*"]

    def connect_host(self) -> str | None:
        """Where to connect on the server's host: loopback when it listens there (or everywhere),
        else its first bind address."""
        addresses = [address.lstrip("-") for address in self.bind]
        for address in addresses:
            if address in ("::*", "::"):
                return "::1"
            if address in ("*", "0.0.0.0", "localhost") or address.startswith("127."):
                return "127.0.0.1"
            if address == "::1":
                return "::1"
        return addresses[0] if addresses else None

    @property
    def unixsocket(self) -> str | None:
        """Path of the Unix socket, if it listens on one."""
        return self.get("unixsocket")

    @property
    def requirepass(self) -> str | None:
        """The default user's password, if the file sets one."""
        return self.get("requirepass") or None

    @property
    def tls_port(self) -> int:
        """The TLS port (0: no TLS)."""
        return _int(self.get("tls-port", "0"), "tls-port")

    def layout(self, default_dir: str) -> DataLayout:
        """The data layout; a relative `dir` is resolved against `default_dir` (the server's cwd)."""
        directory = self.get("dir", ".") or "."
        saves = self.repeated.get("save")
        return DataLayout(
            dir=posixpath.normpath(posixpath.join(default_dir, directory)),
            dbfilename=self.get("dbfilename", "dump.rdb") or "dump.rdb",
            appendonly=(self.get("appendonly", "no") or "no").lower() == "yes",
            appenddirname=self.get("appenddirname", "appendonlydir") or "appendonlydir",
            appendfilename=self.get("appendfilename", "appendonly.aof") or "appendonly.aof",
            save_points=saves is None or any(args and args[0] != "" for args in saves),
        )


def _int(text: str | None, name: str) -> int:
    try:
        return int(text or "")
    except ValueError:
        raise ConfigError(f"{name} {text!r} in the Redis config is not a number") from None


def parse_config(
    path: str,
    read: Reader,
    *,
    glob_paths: Globber = glob.glob,
    cwd: str | None = None,
    into: RedisConfig | None = None,
    depth: int = 0,
) -> RedisConfig:
    """Parse the config file at `path` (read with `read`), following `include` directives.

    `read` raises ConfigError / AccessDeniedError / NotFoundError naming the file; an
    include with wildcards is expanded with `glob_paths`, in sorted order, as Redis does.
    With `cwd` (the directory redis-server starts in), a relative include is found as
    redis-server finds it: against that directory, or against the last `dir` read before
    it (redis-server changes into `dir` the moment it reads the line). Without `cwd`,
    include paths go to `read` as written.
    """
    config = into if into is not None else RedisConfig()
    if depth > _MAX_INCLUDE_DEPTH:
        raise ConfigError(f"{path}: includes nested more than {_MAX_INCLUDE_DEPTH} deep (a loop?)")
    config.files.append(path)
    for number, raw in enumerate(read(path).split("\n"), start=1):
        line = raw.strip(" \t\r\n")
        if not line or line.startswith("#"):
            continue
        try:
            args = split_args(line)
        except ValueError as exc:
            raise ConfigError(f"{path} line {number}: {exc}") from None
        if not args:
            continue
        name, rest = args[0].lower(), args[1:]
        if not _DIRECTIVE.match(name):
            # The line is not shown: a file named by mistake may hold secrets (/etc/shadow).
            raise ConfigError(f"{path} line {number} is not a Redis directive: is {path} a redis.conf?")
        if name == "include":
            if len(rest) != 1:
                raise ConfigError(f"{path} line {number}: include takes one path")
            pattern = rest[0]
            if cwd is not None:
                pattern = posixpath.join(_current_dir(config, cwd), pattern)
            included = sorted(glob_paths(pattern)) if any(c in pattern for c in "*?[") else [pattern]
            for file in included:
                parse_config(file, read, glob_paths=glob_paths, cwd=cwd, into=config, depth=depth + 1)
            continue
        config.set(name, rest)
    return config


def _current_dir(config: RedisConfig, cwd: str) -> str:
    """The directory redis-server is in at this point of reading its config."""
    return posixpath.normpath(posixpath.join(cwd, config.get("dir", ".") or "."))
