"""Configuration: defaults, then the DUESFLOW_* environment. Nothing else lives here."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet


def _instance_secret(instance_path: Path, variable: str, file_name: str, generate: Callable[[], str]) -> str:
    """The value of ``variable``, else one generated once and kept in the instance folder.

    Several workers may start at once: the file is created exclusively, and a loser reads the winner's value.
    """
    from_env = os.environ.get(variable)
    if from_env:
        return from_env
    key_file = instance_path / file_name
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            key = key_file.read_text().strip()
            if key:
                return key
            time.sleep(0.02)
        raise RuntimeError(f"{key_file} is empty; delete it or set {variable}") from None
    key = generate()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


# Sessions and CSRF tokens are signed with the secret key: a short one can be guessed offline.
MIN_SECRET_KEY_LENGTH = 32


class ConfigurationError(RuntimeError):
    """A setting the service refuses to start with."""


def check(config: Mapping[str, Any]) -> None:
    """Refuse to start with a secret key shorter than ``MIN_SECRET_KEY_LENGTH`` characters."""
    key = config.get("SECRET_KEY") or ""
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigurationError(
            f"DUESFLOW_SECRET_KEY 太短（{len(key)} 个字符），至少需要 {MIN_SECRET_KEY_LENGTH} 个字符，例如用 "
            f"python -c \"import secrets; print(secrets.token_hex(32))\" 生成。"
            f" / DUESFLOW_SECRET_KEY is too short ({len(key)} characters); use at least {MIN_SECRET_KEY_LENGTH}.")


def from_environment(instance_path: Path) -> dict[str, object]:
    """Build the configuration mapping for ``app.config`` from defaults and the environment."""
    env = os.environ.get
    return {
        "SQLALCHEMY_DATABASE_URI": env("DUESFLOW_DATABASE_URL")
        or f"sqlite:///{instance_path / 'duesflow.sqlite3'}",
        "SECRET_KEY": _instance_secret(instance_path, "DUESFLOW_SECRET_KEY", "secret_key",
                                       lambda: secrets.token_hex(32)),
        # Encrypts resident ID numbers and phones at rest; retired keys stay readable until rotate-data-key.
        "DATA_KEY": _instance_secret(instance_path, "DUESFLOW_DATA_KEY", "data_key",
                                     lambda: Fernet.generate_key().decode()),
        "DATA_OLD_KEYS": [key for key in env("DUESFLOW_DATA_OLD_KEYS", "").split(",") if key.strip()],
        "PUBLIC_URL": env("DUESFLOW_PUBLIC_URL", "http://127.0.0.1:5000").rstrip("/"),
        "RECEIPT_FONT": env("DUESFLOW_RECEIPT_FONT") or None,
        # Central's signing key (PKCS#12); none: a development key made once in the instance folder. Retired
        # certificates (files or folders, separated by commas) keep the receipts they signed valid.
        "SIGNING_KEY": env("DUESFLOW_SIGNING_KEY") or None,
        "SIGNING_KEY_PASSWORD": env("DUESFLOW_SIGNING_KEY_PASSWORD") or None,
        "SIGNING_OLD_CERTS": [entry.strip() for entry in env("DUESFLOW_SIGNING_OLD_CERTS", "").split(",")
                              if entry.strip()],
        "MAX_AMOUNT": Decimal(env("DUESFLOW_MAX_AMOUNT", "10000000.00")),
        "REDIS_URL": env("DUESFLOW_REDIS_URL") or None,
        # Notifications (SPEC §9): a sender named as "module:factory", else SMTP when a URL is given, else none
        # (messages are kept and shown on the member's page). See docs/features.md, "Notifications".
        "NOTIFICATION_SENDER": env("DUESFLOW_NOTIFICATION_SENDER") or None,
        "SMTP_URL": env("DUESFLOW_SMTP_URL") or None,
        "MAIL_FROM": env("DUESFLOW_MAIL_FROM") or None,
        "NOTIFY_AFTER_REQUEST": env("DUESFLOW_NOTIFY_AFTER_REQUEST", "1") == "1",
        "NOTIFICATION_MAX_ATTEMPTS": int(env("DUESFLOW_NOTIFICATION_MAX_ATTEMPTS", "5")),
        # A claim older than this belongs to a sender that died; keep it well above the SMTP timeout (30 s).
        "NOTIFICATION_LEASE": timedelta(seconds=int(env("DUESFLOW_NOTIFICATION_LEASE", "600"))),
        "NOTIFICATION_RETRY_DELAY": timedelta(seconds=int(env("DUESFLOW_NOTIFICATION_RETRY_DELAY", "60"))),
        "TOKEN_TTL": timedelta(seconds=int(env("DUESFLOW_TOKEN_TTL", str(8 * 3600)))),
        # Number of reverse proxies in front of the service whose X-Forwarded-For may be trusted.
        "TRUSTED_PROXIES": int(env("DUESFLOW_TRUSTED_PROXIES", "0")),
        # Who may read /metrics: addresses or networks, comma-separated (everyone else gets 404).
        "METRICS_ALLOW": env("DUESFLOW_METRICS_ALLOW", "127.0.0.0/8,::1"),
        # SPEC §7: per (username, client) and per client; a username failing from this many clients is shown to
        # admins (services.throttle.usernames_under_attack), never locked.
        "LOGIN_MAX_FAILURES": 5,
        "LOGIN_CLIENT_MAX_FAILURES": 20,
        "LOGIN_ATTACK_MIN_CLIENTS": int(env("DUESFLOW_LOGIN_ATTACK_MIN_CLIENTS", "3")),
        "LOGIN_WINDOW": timedelta(minutes=15),
        "VERIFY_MAX_ATTEMPTS": int(env("DUESFLOW_VERIFY_MAX_ATTEMPTS", "30")),
        "VERIFY_WINDOW": timedelta(minutes=10),
        # How far back central sees failed verifications per receipt number (SPEC §5).
        "VERIFY_NUMBER_WINDOW": timedelta(hours=24),
        # argon2id parameters (RFC 9106 second recommended option, lowered memory for small hosts); the
        # environment may lower them for test servers only: hashes carry their own parameters when verified.
        "ARGON2_TIME_COST": int(env("DUESFLOW_ARGON2_TIME_COST", "3")),
        "ARGON2_MEMORY_COST": int(env("DUESFLOW_ARGON2_MEMORY_COST", str(64 * 1024))),
        "ARGON2_PARALLELISM": int(env("DUESFLOW_ARGON2_PARALLELISM", "2")),
        "IDEMPOTENCY_TTL": timedelta(hours=24),
        # How long a replay waits for the first request with its key to finish (SPEC §7), then 409.
        "IDEMPOTENCY_WAIT": timedelta(seconds=10),
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        # Batch entry of payments (SPEC §9): rows per batch, and the body that endpoint alone may send.
        "MAX_BATCH_ROWS": int(env("DUESFLOW_MAX_BATCH_ROWS", "10000")),
        "MAX_BATCH_BYTES": 8 * 1024 * 1024,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": env("DUESFLOW_SECURE_COOKIES", "0") == "1",
        "JSON_SORT_KEYS": False,
    }
