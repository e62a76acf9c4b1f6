"""utils/settings.py: defaults, one clear line for every wrong value, and `.env.example` kept in step."""
import re
from dataclasses import replace
from pathlib import Path

import pytest

from providers import PROVIDER_CLASSES
from utils.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent


# The seed contract's five providers, first in the rotation; providers added later follow them.
SEED = ["groq", "cerebras", "openrouter", "gemini", "huggingface"]


def test_defaults_list_the_providers_in_round_robin_order():
    settings = load_settings({})
    assert [p.id for p in settings.providers] == [cls.id for cls in PROVIDER_CLASSES]
    assert [p.id for p in settings.providers][:len(SEED)] == SEED


def seed_defaults(field: str) -> dict:
    return {p.id: getattr(p, field) for p in load_settings({}).providers if p.id in SEED}


def test_default_base_urls_are_everything_before_the_apis_own_path():
    assert seed_defaults("base_url") == {
        "groq": "https://api.groq.com/openai/v1",
        "cerebras": "https://api.cerebras.ai/v1",
        "openrouter": "https://openrouter.ai/api/v1",
        "gemini": "https://generativelanguage.googleapis.com/v1beta",
        "huggingface": "https://router.huggingface.co/v1",
    }


def test_default_models_are_the_latest_known_ids():
    assert seed_defaults("model") == {
        "groq": "moonshotai/kimi-k2-instruct-0905",
        "cerebras": "zai-glm-4.7",
        "openrouter": "deepseek/deepseek-r1-0528:free",
        "gemini": "gemini-3-flash-preview",
        "huggingface": "meta-llama/Llama-3.1-8B-Instruct",
    }


def test_with_no_keys_no_provider_is_configured():
    settings = load_settings({})
    assert not any(p.configured for p in settings.providers)
    assert all(p.api_key is None and p.max_tokens == 0 for p in settings.providers)


def test_server_defaults():
    settings = load_settings({})
    assert settings.port == 3000
    assert settings.debug is False
    assert settings.cors_origins == ("*",)
    assert settings.require_auth is True
    assert settings.master_api_key is None
    assert settings.public_api_keys == ()
    assert settings.rate_limit_enabled is True
    assert settings.rate_limit_max == 10
    assert settings.rate_limit_window_ms == 60_000
    assert settings.database_url == "sqlite:///data/gateway.db"
    assert settings.redis_url is None


# The one default that differs: a served gateway checks its models hourly, while Settings built in code
# (tests) start no background thread unless they ask for one.
SERVED = replace(Settings(), model_check_interval=3600)


def test_an_empty_environment_gives_the_same_settings_as_the_dataclass_defaults():
    assert load_settings({}) == SERVED


def test_empty_values_count_as_unset():
    env = {"PORT": "", "DEBUG": " ", "RATE_LIMIT_MAX": "", "REDIS_URL": "", "GROQ_BASE_URL": "", "GROQ_MODEL": ""}
    assert load_settings(env) == SERVED


def test_each_provider_reads_its_key_base_url_model_and_max_tokens():
    env = {"HF_TOKEN": "hf_abc", "HF_BASE_URL": "http://127.0.0.1:9000/v1/", "HF_MODEL": "m:cerebras",
           "HF_MAX_TOKENS": "256", "GEMINI_API_KEY": "AIza-test"}
    settings = load_settings(env)
    hf = settings.provider("huggingface")
    assert (hf.api_key, hf.base_url, hf.model, hf.max_tokens) == ("hf_abc", "http://127.0.0.1:9000/v1", "m:cerebras", 256)
    assert hf.configured and settings.provider("gemini").configured
    assert not settings.provider("groq").configured


def test_lists_are_comma_separated_and_trimmed():
    settings = load_settings({"CORS_ORIGINS": "https://a.test, https://b.test ,", "PUBLIC_API_KEYS": "k1,,k2 "})
    assert settings.cors_origins == ("https://a.test", "https://b.test")
    assert settings.public_api_keys == ("k1", "k2")


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("YES", True), ("on", True),
                                             ("0", False), ("False", False), ("no", False), ("off", False)])
def test_bools_accept_the_usual_spellings(value, expected):
    assert load_settings({"DEBUG": value}).debug is expected


def test_rate_limit_is_in_flask_limiter_notation():
    assert load_settings({}).rate_limit == "10 per 60 second"
    assert load_settings({"RATE_LIMIT_MAX": "100", "RATE_LIMIT_WINDOW_MS": "1000"}).rate_limit == "100 per 1 second"


def test_rate_limit_window_is_rounded_up_to_whole_seconds():
    assert load_settings({"RATE_LIMIT_WINDOW_MS": "1500"}).rate_limit == "10 per 2 second"
    assert Settings(rate_limit_window_ms=1).rate_limit == "10 per 1 second"


@pytest.mark.parametrize("url, expected", [
    ("postgresql://gw@db.internal/gateway", "postgresql+psycopg://gw@db.internal/gateway"),
    ("postgres://gw@db.internal/gateway", "postgresql+psycopg://gw@db.internal/gateway"),
    ("postgresql+psycopg://gw@db.internal/gateway", "postgresql+psycopg://gw@db.internal/gateway"),
    ("sqlite:////var/lib/gw/keys.db", "sqlite:////var/lib/gw/keys.db"),
    ("data/other.db", "sqlite:///data/other.db"),
])
def test_database_url_forms(url, expected):
    assert load_settings({"DATABASE_URL": url}).database_url == expected


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://:pw@cache.test:6380/1", "unix:///tmp/redis.sock"])
def test_redis_url_accepts_redis_rediss_and_unix(url):
    assert load_settings({"REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize("name, value", [
    ("RATE_LIMIT_MAX", "ten"),
    ("RATE_LIMIT_MAX", "1.5"),
    ("RATE_LIMIT_MAX", "0"),
    ("RATE_LIMIT_WINDOW_MS", "1m"),
    ("PORT", "http"),
    ("PORT", "70000"),
    ("GROQ_MAX_TOKENS", "-1"),
    ("MAX_ATTEMPTS", "all"),
    ("FAILURE_THRESHOLD", "0"),
    ("CONNECT_TIMEOUT", "5s"),
    ("FIRST_TOKEN_TIMEOUT", "0"),
    ("IDLE_TIMEOUT", "nan"),
    ("FAILURE_COOLDOWN", "inf"),
    ("DEBUG", "maybe"),
    ("REQUIRE_AUTH", "enabled"),
    ("RATE_LIMIT_ENABLED", "2"),
    ("REDIS_FAIL_OPEN", "y"),
    ("GROQ_BASE_URL", "api.groq.com/openai/v1"),
    ("CEREBRAS_BASE_URL", "ftp://api.cerebras.ai/v1"),
    ("OPENROUTER_BASE_URL", "https://"),
    ("GEMINI_BASE_URL", "generativelanguage.googleapis.com"),
    ("HF_BASE_URL", "router.huggingface.co:443/v1"),
    ("REDIS_URL", "127.0.0.1:6379"),
    ("REDIS_URL", "http://cache.test:6379"),
    ("DATABASE_URL", "mysql://gw@db.internal/gateway"),
])
def test_a_wrong_value_stops_start_up_with_a_message_naming_the_variable(name, value):
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value})
    message = str(caught.value)
    assert name in message
    assert "\n" not in message


@pytest.mark.parametrize("name, value", [
    ("REDIS_URL", "http://:secret@cache.test:6379/0"),
    ("REDIS_URL", "cache.test:secret@6379"),
    ("DATABASE_URL", "mysql://gw:secret@db.internal/gateway"),
    ("GROQ_BASE_URL", "ftp://user:secret@api.groq.com/openai/v1"),
])
def test_a_rejected_url_is_not_echoed_so_its_password_stays_out_of_the_message(name, value):
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value})
    assert name in str(caught.value)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("name, value", [
    ("GROQ_BASE_URL", "https://api.groq.com:openai/v1"),
    ("REDIS_URL", "redis://:secret@cache.test:notaport/0"),
    ("GEMINI_BASE_URL", "https://[generativelanguage.googleapis.com/v1beta"),
    ("REDIS_URL", "redis://:secret@[cache.test:6379/0"),
])
def test_a_url_with_a_malformed_port_or_host_stops_start_up(name, value):
    # DESIGN.md: a malformed URL stops start-up with one line naming it (not the first request).
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value})
    assert name in str(caught.value)
    assert "secret" not in str(caught.value)


# --- `.env.example` in step with what load_settings reads ---

ENV_READERS = ("str", "int", "bool", "float", "url", "list", "database_url", "origins", "choice")


def names_read_by_load_settings() -> set[str]:
    """Every variable load_settings reads: the literal names passed to `env.<reader>(...)` in
    utils/settings.py, plus each provider's key variable and `<PREFIX>_BASE_URL/_MODEL/_MAX_TOKENS`."""
    source = (ROOT / "utils" / "settings.py").read_text()
    pattern = r'env\.(?:%s)\(\s*"([A-Z][A-Z0-9_]*)"' % "|".join(ENV_READERS)
    names = set(re.findall(pattern, source))
    for cls in PROVIDER_CLASSES:
        names |= set(cls.setting_names())
    return names


def names_read_by_gunicorn_conf() -> set[str]:
    # gunicorn.conf.py imports nothing from the app, so it reads its own few variables (WEB_CONCURRENCY).
    source = (ROOT / "gunicorn.conf.py").read_text()
    return set(re.findall(r"""os\.environ(?:\.get\(|\[)\s*['"]([A-Z][A-Z0-9_]*)['"]""", source))


def names_in_env_example() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


class RecordingEnviron(dict):
    def __init__(self):
        super().__init__()
        self.asked = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.asked.add(key)
        return super().__contains__(key)


def test_the_source_scan_finds_every_variable_load_settings_actually_reads():
    environ = RecordingEnviron()
    load_settings(environ)
    assert names_read_by_load_settings() == environ.asked


def test_env_example_lists_every_setting_and_nothing_else():
    documented = names_in_env_example()
    read = names_read_by_load_settings()
    assert sorted(read - documented) == [], "read by load_settings but missing from .env.example"
    assert sorted(documented - read - names_read_by_gunicorn_conf()) == [], "in .env.example but read by nothing"


def test_env_example_values_load_as_valid_settings():
    lines = (ROOT / ".env.example").read_text().splitlines()
    environ = dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z][A-Z0-9_]*=", line))
    assert load_settings(environ) == SERVED


def test_the_readme_configuration_table_names_every_setting():
    """Every variable read (by load_settings or gunicorn.conf.py) has a row in the README's Configuration table,
    by its name or, for a provider's, as `<P>_<SUFFIX>`."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([A-Z][A-Z0-9_]*)`", table))
    per_provider = set(re.findall(r"`<P>_([A-Z][A-Z0-9_]*)`", table))
    prefixes = tuple(f"{cls.env_prefix}_" for cls in PROVIDER_CLASSES)
    missing = [name for name in sorted(names_read_by_load_settings() | names_read_by_gunicorn_conf())
               if name not in named and not (name.startswith(prefixes) and name.split("_", 1)[1] in per_provider)]
    assert missing == []
