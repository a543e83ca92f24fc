"""The interop tests against real peers (radtest, radclient, eapol_test, pyrad) again, with
``radius.send_batch = false``: one sendto per reply, the path of an install without the
sendmmsg extension (issue 30). tests/radius/test_interop_peers.py runs them batched."""

from __future__ import annotations

from tests.radius.test_interop_peers import *  # noqa: F403

RADIUS_ENV = {"NETD_RADIUS_SEND_BATCH": "false"}
