"""A secret made once and kept in a file readable by its owner alone: the admin panel's session key when
SECRET_KEY is unset, so sessions outlive a restart and every worker signs with the same key."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

MIN_LENGTH = 32


def load_or_create(path: Path) -> str:
    """The secret in `path`, made now if there is none. Workers starting together agree: each writes its
    own candidate to a private file, and the first to link it into place wins; the others read the winner."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(candidate, path)  # atomic, and never replaces a file already there
            except FileExistsError:
                pass
        finally:
            os.unlink(candidate)
    value = path.read_text().strip()
    if len(value) < MIN_LENGTH:
        raise OSError(f"{path} holds no usable secret (under {MIN_LENGTH} characters): delete it to have one made")
    return value
