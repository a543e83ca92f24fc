"""Stores for in-process ``netd`` runs: a migrated database and a private Redis prefix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import StoreUrls


@pytest.fixture
def cli_env(
    migrated: str, store_urls: StoreUrls, key_prefix: str, tmp_path: Path
) -> dict[str, str]:
    """The environment of a ``netd`` admin command on this test's stores."""
    return {
        "NETD_DATABASE_URL": migrated,
        "NETD_REDIS_URL": store_urls.redis,
        "NETD_REDIS_KEY_PREFIX": key_prefix,
        "NETD_SECRETS_KEY": os.urandom(32).hex(),
        "NETD_STATE_DIR": str(tmp_path / "state"),
        "NETD_LOG_LEVEL": "warning",
        "NETD_API_GRPC_PORT": "0",
    }
