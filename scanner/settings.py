"""Scan settings: every politeness limit, timeout and trust option lives here, once.

``Settings(...)`` is exactly what it is given (tests, stored runs). ``load_settings`` is what a user's
scan gets: the command line, then ``PLEDGESCAN_*`` environment variables, then ``pledgescan.toml`` (the
working directory's, else the user config directory's, or ``--config FILE``), then the defaults here.
The command line's option defaults, ranges and help, and the history store's record of a run's
settings, are derived from these fields.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, field_serializer, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from scanner import __version__

DEFAULT_USER_AGENT = (
    f"pledgescan/{__version__} (+https://github.com/pledgescan/pledgescan; Pledge 4 posture scan)"
)
CONFIG_NAME = "pledgescan.toml"
ENV_PREFIX = "PLEDGESCAN_"


class Settings(BaseSettings):
    """Global limits and options of one scan. Collectors read them; nothing else sets them."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_prefix=ENV_PREFIX)

    timeout: float = Field(10.0, ge=0.1, le=600, description="Seconds for each network operation.")
    target_deadline: float = Field(120.0, ge=1, le=7200, description=(
        "Seconds for all the work on one target; undecided controls become error."))
    concurrency: int = Field(16, ge=1, le=1024, description=(
        "Targets scanned at once (politeness is per address, whatever this is)."))
    per_host_connections: int = Field(4, ge=1, le=64, description=(
        "Politeness cap: open connections to one IP address, every prober together."))
    rate_limit: float = Field(100.0, ge=0, le=10000, description=(
        "Politeness budget: requests and TLS handshakes per second to one IP address, shared by the "
        "targets on it (5: gentle, for fragile servers; 0: unlimited)."))
    processes: int = Field(0, ge=0, le=256, description=(
        "Scanning processes, targets split by address (0: automatic, the machine's cores when there are "
        "at least twice --concurrency targets, else 1; 1: this process only)."))
    coalesce: bool = Field(True, description=(
        "HTTP/2 connection coalescing, as browsers do it: names on one address whose verified certificate "
        "covers them share its connection (off: a connection per name)."))
    max_sockets: int = Field(512, ge=1, le=65536, description=(
        "Sockets in flight from this machine, every address together."))
    user_agent: str = DEFAULT_USER_AGENT
    contact_url: str | None = None
    ca_bundle: Path | None = None
    # (host, port) -> address; in a file or PLEDGESCAN_RESOLVE: "HOST:PORT:ADDR" items (like --resolve)
    resolve: Annotated[dict[tuple[str, int], str], NoDecode] = Field(default_factory=dict)
    nameservers: Annotated[tuple[tuple[str, int], ...], NoDecode] = ()  # "ADDR[:PORT]" items
    trust_anchors: tuple[Path, ...] = ()
    max_body_bytes: int = Field(1_000_000, ge=1)
    max_header_bytes: int = Field(64_000, ge=1)
    max_redirects: int = Field(10, ge=0)
    exposure_max_requests: int = Field(150, ge=1)  # per host, see README
    only: Annotated[frozenset[str], NoDecode] = frozenset()  # check or control IDs
    skip: Annotated[frozenset[str], NoDecode] = frozenset()

    # Where values come from: only what is given (tests, stored runs), unless ``load_settings`` makes a
    # subclass that also reads the environment and the settings file.
    from_user: ClassVar[bool] = False
    settings_file: ClassVar[Path | None] = None

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        if not cls.from_user:
            return (init_settings,)
        sources = [init_settings, env_settings]
        if cls.settings_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cls.settings_file))
        return tuple(sources)

    @property
    def effective_user_agent(self) -> str:
        if self.contact_url:
            return f"{self.user_agent} contact: {self.contact_url}"
        return self.user_agent

    # -- the text forms of the command line, the settings file and the store ------------------------
    @field_validator("resolve", mode="before")
    @classmethod
    def _resolve(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.replace(",", " ").split()
        if isinstance(v, list | tuple):  # ["HOST:PORT:ADDR", ...] or [[host, port, addr], ...]
            return dict(parse_resolve_item(x) if isinstance(x, str) else ((x[0], int(x[1])), x[2]) for x in v)
        return v

    @field_validator("nameservers", mode="before")
    @classmethod
    def _nameservers(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.replace(",", " ").split()
        if isinstance(v, list | tuple):
            return tuple(parse_nameserver(x) if isinstance(x, str) else (x[0], int(x[1])) for x in v)
        return v

    @field_validator("only", "skip", mode="before")
    @classmethod
    def _ids(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list | tuple | set | frozenset):
            return frozenset(x.strip() for item in v for x in str(item).split(",") if x.strip())
        return v

    @field_serializer("resolve", when_used="json")
    def _resolve_out(self, v: dict[tuple[str, int], str]) -> list[list[Any]]:
        return [[h, p, a] for (h, p), a in v.items()]

    @field_serializer("only", "skip", when_used="json")
    def _ids_out(self, v: frozenset[str]) -> list[str]:
        return sorted(v)


# The settings a run keeps: what decides how its targets are scanned (not the fixed safety limits).
STORED_SETTINGS = ("timeout", "target_deadline", "concurrency", "processes", "per_host_connections",
                   "coalesce", "rate_limit", "contact_url", "ca_bundle", "resolve", "nameservers",
                   "trust_anchors", "only", "skip")


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the system says), for the automatic
    number of processes of a scan and of writing a portfolio."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def settings_to_json(settings: Settings) -> dict[str, Any]:
    """The scan settings as JSON, stored with the run so ``--resume`` scans the rest the same way."""
    return settings.model_dump(mode="json", include=set(STORED_SETTINGS))


def settings_from_json(data: dict[str, Any]) -> Settings:
    """The stored settings back (fields missing from an older run take today's defaults, from here)."""
    return Settings.model_validate({k: v for k, v in data.items() if k in STORED_SETTINGS})


def parse_resolve_item(text: str) -> tuple[tuple[str, int], str]:
    """``HOST:PORT:ADDR`` (like curl; ADDR may be a bracketed IPv6 address); ValueError says why not."""
    host, sep, rest = text.partition(":")
    port_s, sep2, addr = rest.partition(":")
    addr = addr.strip("[]")
    if not (sep and sep2 and host and port_s.isdigit() and addr):
        raise ValueError(f"--resolve {text!r}: expected HOST:PORT:ADDR, e.g. example.org:443:192.0.2.1")
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        raise ValueError(f"--resolve {text!r}: {addr!r} is not an IP address") from None
    port = int(port_s)
    if not 0 < port < 65536:
        raise ValueError(f"--resolve {text!r}: port out of range")
    return (host.lower().rstrip("."), port), addr


def parse_nameserver(text: str) -> tuple[str, int]:
    """``ADDR[:PORT]``; IPv6 as ``[ADDR]:PORT`` or bare. ValueError says why not."""
    addr, port = text, 53
    if text.startswith("["):
        addr, _, tail = text[1:].partition("]")
        if tail.startswith(":"):
            port = _port(tail[1:], text)
    elif text.count(":") == 1:
        addr, _, p = text.partition(":")
        port = _port(p, text)
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        raise ValueError(f"--nameserver {text!r}: expected ADDR[:PORT] with an IP address") from None
    return addr, port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"--nameserver {whole!r}: bad port {text!r}")
    return int(text)


def config_file(explicit: Path | None = None) -> Path | None:
    """The settings file: ``explicit``, else ``./pledgescan.toml``, else the user config directory's."""
    if explicit is not None:
        return explicit
    from platformdirs import user_config_path

    for candidate in (Path.cwd() / CONFIG_NAME, user_config_path("pledgescan") / CONFIG_NAME):
        if candidate.is_file():
            return candidate
    return None


def load_settings(given: dict[str, Any] | None = None, config: Path | None = None) -> Settings:
    """Settings from ``given`` (the command line), then ``PLEDGESCAN_*``, then the settings file, then
    the defaults. Raises ``pydantic.ValidationError`` (bad value) or ``OSError``/``ValueError`` (bad file)."""
    path = config_file(config)
    if path is not None and not path.is_file():
        raise OSError(f"settings file {path} does not exist")

    class FromUser(Settings):
        from_user = True
        settings_file = path

    loaded = FromUser(**(given or {}))
    return Settings(**{name: getattr(loaded, name) for name in Settings.model_fields})
