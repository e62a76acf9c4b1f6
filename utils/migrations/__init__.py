"""Alembic's scripts for the gateway's database: `env.py`, the revision template and `versions/`.
Run by `utils/schema.py` (no alembic.ini: its configuration is built in code)."""
