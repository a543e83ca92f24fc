"""What netd reads at run time and ships in its wheel: the RADIUS dictionaries, the default
policies, the example configuration and the systemd units.

They are read through :mod:`importlib.resources`, so an installed netd finds them wherever
pip put the package; nothing depends on the working directory. An operator's own
directories (``policies.dir``, ``radius.dictionaries``) replace or extend them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def path(*parts: str) -> Path:
    """The file or folder ``parts`` below the packaged resources, as a real path.

    Raises FileNotFoundError when the package is not installed as files on disk (a zip
    import), which netd does not support: the dictionaries and policies are read as files.
    """
    root = resources.files(__name__)
    if not isinstance(root, Path):  # a zipimport Traversable: no file system path
        raise FileNotFoundError(f"netd's resources are not files on disk ({root!r})")
    return root.joinpath(*parts)


POLICIES = "policies"
DICTIONARY = ("dictionaries", "dictionary")
EXAMPLE_CONFIG = "netd.example.toml"
SYSTEMD = "systemd"
