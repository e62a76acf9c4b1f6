"""Changes an operator may want to hear about, as the router and the key checks report them.

`Events` hears nothing: it is what a router or a key check built without webhooks (as most tests build them)
reports to. The factory gives them utils/notifier.py's `Notifier` instead, which turns each change into one
webhook event, however many workers or machines saw it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from utils.circuits import Circuit

# The event types a webhook may subscribe to (`*`: all of them); `webhook.test` is sent on request only.
TYPES = ("provider.down", "provider.up", "provider.quota_exhausted", "provider.model_retired",
         "key.created", "key.revoked", "key.budget_exhausted", "key.expired")
TEST = "webhook.test"


class Events:
    def circuit(self, slot: str, circuit: Circuit) -> None:
        """A provider key's circuit was written (`slot` as utils/circuits.py names it: `groq`, `groq#2`)."""

    def quota_exhausted(self, slot: str, reset_at: float, reason: str) -> None:
        """A provider key's quota ran out until `reset_at`."""

    def key_created(self, key_hash: str, name: str) -> None:
        """A key was created."""

    def key_revoked(self, key_hash: str, name: str | None) -> None:
        """A key was revoked (its name read before it went)."""

    def key_expired(self, key_hash: str, expired_at: float) -> None:
        """A request came with a key past its expiry."""

    def budget_exhausted(self, key_hash: str, detail: str, reset_at: float) -> None:
        """A key's budget (`detail` says which) is spent until `reset_at`."""
