"""The real daemons the fuzz tests send hostile input to: the ACS and API fixtures of their
own test packages."""

from tests.acs.conftest import acs
from tests.api.conftest import api

__all__ = ["acs", "api"]
