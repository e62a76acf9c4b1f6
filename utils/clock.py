"""Times as the API shows them: ISO 8601, UTC, milliseconds, `Z`."""
from datetime import datetime, timezone


def iso(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")
