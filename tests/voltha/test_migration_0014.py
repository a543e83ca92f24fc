"""Migration 0014 on a database that has VOLTHA data from before it: services provisioned
then keep the entry netd served then (so ONOS can still match them for removal), bindings'
serials are put in openolt's form, and a serial bound under two spellings keeps its latest
binding with an event for the other."""

from __future__ import annotations

import json

import asyncpg

from daemons.store import migrate
from tests.conftest import StoreUrls, fresh_database


async def test_0014_keeps_old_services_matchable_and_normalizes_serials(
    store_urls: StoreUrls,
) -> None:
    migrations = migrate.available()
    before = [m for m in migrations if m.version < 14]
    async with fresh_database(store_urls, "m17_") as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate.apply(conn, before)
            await conn.execute(
                "INSERT INTO subscribers (username, plan) VALUES ('alice', 'fiber-100'), "
                "('bob', 'fiber-100')"
            )
            await conn.execute(
                "INSERT INTO onu_bindings (serial, subscriber, s_tag, c_tag, updated_at) VALUES "
                "('ALPHE3D1CEA3', 'alice', 100, 201, now() - interval '1 day'), "
                "('ALPHe3d1cea3', 'bob', 100, 202, now()), "
                "('BRCMABCDEF01', 'alice', 100, 203, now()), "
                "('SHORT1', 'bob', 100, 204, now())"
            )
            await conn.execute(
                "INSERT INTO voltha_services (stack, serial, uni, subscriber, plan, s_tag, "
                "c_tag, tp_id) VALUES ('lab', 'ALPHe3d1cea3', 1, 'bob', 'fiber-100', 100, 202, 64)"
            )
            await migrate.apply(conn, migrations)
            rows = await conn.fetch(
                "SELECT serial, subscriber, c_tag FROM onu_bindings ORDER BY serial"
            )
            assert [tuple(r) for r in rows] == [
                ("ALPHe3d1cea3", "bob", 202),  # the latest of the two spellings
                ("BRCMabcdef01", "alice", 203),
                ("SHORT1", "bob", 204),  # not of openolt's shape: as it was
            ]
            merged = await conn.fetch(
                "SELECT subject, data::text FROM events WHERE kind = 'voltha.binding.merged'"
            )
            assert [r["subject"] for r in merged] == ["ALPHE3D1CEA3"]
            assert json.loads(merged[0]["data"])["subscriber"] == "alice"
            service = await conn.fetchrow("SELECT * FROM voltha_onos_services")
            tag = json.loads(service["tag_info"])
            assert (service["serial"], service["c_tag"]) == ("ALPHe3d1cea3", 202)
            # What netd served before 0014, so that ONOS still matches it to remove it.
            assert tag["downstreamBandwidthProfile"] == "fiber-100-down"
            assert tag["usPonCTagPriority"] == 0 and tag["uniTagMatch"] == 4096
            assert await conn.fetchval("SELECT count(*) FROM voltha_services") == 1  # kept
            assert await conn.fetchval(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = 'voltha_devices' AND column_name = 'mac_address'"
            )
        finally:
            await conn.close()
