"""Typed reads of the environment, for utils/settings.py: each wrong value is a SettingsError whose
message names the setting in one line."""
from __future__ import annotations

import math
import re
from urllib.parse import urlsplit

# An origin as browsers send it, `*` standing for a subdomain: scheme://host[:port], nothing more.
_ORIGIN = re.compile(r"^https?://(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?$")


class SettingsError(ValueError):
    """A setting is present but wrong; the message names it in one line."""


class Env:
    """Typed reads of the environment; an empty value counts as unset."""

    def __init__(self, environ):
        self._environ = environ

    def str(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def list(self, name: str) -> tuple[str, ...]:
        return tuple(item.strip() for item in (self.str(name) or "").split(",") if item.strip())

    def origins(self, name: str) -> tuple[str, ...]:
        origins = self.list(name) or ("*",)
        for origin in origins:
            if origin != "*" and not _ORIGIN.match(origin):
                raise SettingsError(f"{name} entries must be * or origins like https://app.example.com or "
                                    f"https://*.example.com, got {origin!r}")
        return origins

    def bool(self, name: str, default: bool) -> bool:
        value = self.str(name)
        if value is None:
            return default
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name} must be true or false, got {value!r}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = (self.str(name) or default).lower()
        if value not in choices:
            raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value

    def int(self, name: str, default: int, low: int = 0, high: int | None = None) -> int:
        value = self.str(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {value!r}") from None
        if number < low or (high is not None and number > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise SettingsError(f"{name} must be {bounds}, got {number}")
        return number

    def float(self, name: str, default: float) -> float:
        value = self.str(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(f"{name} must be a number of seconds, got {value!r}") from None
        if not 0 < number < math.inf:
            raise SettingsError(f"{name} must be a positive number of seconds, got {value!r}")
        return number

    def url(self, name: str, default: str | None, schemes=("http", "https")) -> str | None:
        value = self.str(name)
        if value is None:
            return default
        try:
            parts = urlsplit(value)
        except ValueError:  # an unbalanced [ or ] in the host
            raise SettingsError(f"{name} has a malformed host") from None
        try:
            parts.port  # noqa: B018 - reading it validates it
        except ValueError:
            raise SettingsError(f"{name} has a malformed port") from None
        if parts.scheme not in schemes or not (parts.netloc or parts.scheme == "unix"):
            raise SettingsError(f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return value.rstrip("/")

    def database_url(self, name: str, default: str) -> str:
        value = self.str(name)
        if value is None:
            return default
        if "://" not in value:  # a bare path means a SQLite file
            return f"sqlite:///{value}"
        scheme, _, rest = value.partition("://")
        if scheme in ("postgresql", "postgres"):  # SQLAlchemy's default PostgreSQL driver is not ours
            return f"postgresql+psycopg://{rest}"
        if scheme not in ("sqlite", "postgresql+psycopg"):
            raise SettingsError(f"{name} must be a sqlite:/// path or a postgresql:// URL")
        return value
