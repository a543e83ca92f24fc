"""dotmac-netd: the network daemons of an ISP/FTTH platform."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dotmac-netd")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
