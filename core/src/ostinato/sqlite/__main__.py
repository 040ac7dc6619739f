"""``python -m ostinato.sqlite``: print the SQLite schema the relational toolkit creates.

``python -m ostinato.sqlite > core/src/ostinato/sqlite/schema.sql`` regenerates the file kept
beside the provider; a test checks the two agree.
"""

import sys

from ostinato.relational.schema import render
from ostinato.sqlite.provider import SqliteDialect

sys.stdout.write(render(SqliteDialect()))
