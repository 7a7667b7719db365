"""The workspace store: SQLite for records, folders beside it for files."""

from nbml.store.db import SCHEMA_VERSION, Database
from nbml.store.records import Store

__all__ = ["SCHEMA_VERSION", "Database", "Store"]
