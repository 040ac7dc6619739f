"""Small, real custom providers: the worked examples of docs/custom-provider.md (one on plain
files against the storage contract, one on ``sqlite3`` with the relational toolkit)."""

from examples.custom_provider.file_provider import FileProvider
from examples.custom_provider.relational_provider import TinySqlProvider

__all__ = ["FileProvider", "TinySqlProvider"]
