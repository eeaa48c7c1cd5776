"""Usage and billing rows from a warehouse (a SQL query against any SQLAlchemy URL) or a CSV/Parquet file.

Columns map to canonical fields in YAML; rows are keyed by account external id or domain. With a
``cursor_column`` the query reads only rows changed since the cursor, in ascending order.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from connectors.base import ApiStats, Stream
from connectors.entities import finish_for
from connectors.fields import RecordMapper
from core.config.sources import TabularSourceConfig
from core.errors import ConfigError, FatalApiError
from core.records import RECORD_TYPES, Record, RejectedRecord

ROWS_PER_FETCH = 5000
ID_FIELD = "_row_id"


def _parquet(source: str, path: Path) -> Any:
    """``pyarrow.parquet``, or a ConfigError naming the extra to install (pyarrow is optional)."""
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"{source}: reading the Parquet file {path} needs pyarrow, which is not installed; "
            "install the extra: pip install 'crm-health-agent[parquet]'"
        ) from exc
    return pq


class TabularStream:
    """All rows of one query or file, mapped into one canonical table."""

    primary_key = ID_FIELD

    def __init__(self, source: str, entity: str, config: TabularSourceConfig) -> None:
        if bool(config.query) == bool(config.file):
            raise ConfigError(f"sources.{source}: set exactly one of query (with url) or file")
        if config.query and not config.url:
            raise ConfigError(f"sources.{source}: a query needs url (a SQLAlchemy URL)")
        if "external_id" not in config.columns and not config.id_columns:
            raise ConfigError(f"sources.{source}: map external_id in columns, or list id_columns")
        self.name = source
        self.source = source
        self.entity = entity
        self.config = config
        self.cursor_field = config.cursor_column or ""
        fields = dict(config.columns)
        fields.setdefault("external_id", ID_FIELD)
        if config.cursor_column:
            fields.setdefault("source_updated_at", config.cursor_column)
        self.mapper = RecordMapper(
            source=source, stream=source, record_type=RECORD_TYPES[entity], fields=fields,
            extra_fields=config.extra_columns, finish=finish_for(entity),
        )

    def _with_id(self, row: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(row)
        if self.config.id_columns:
            out[ID_FIELD] = ":".join("" if row.get(c) is None else str(row.get(c)) for c in self.config.id_columns)
        return out

    def _sql_rows(self, since: datetime | None) -> Iterator[dict[str, Any]]:
        assert self.config.url
        assert self.config.query
        query = self.config.query.strip().rstrip(";")
        sql = f"SELECT * FROM ({query}) AS source_rows"
        params: dict[str, Any] = {}
        if self.config.cursor_column:
            if since is not None:
                sql += f" WHERE {self.config.cursor_column} >= :since"
                params["since"] = since.replace(tzinfo=None).isoformat(sep=" ")
            sql += f" ORDER BY {self.config.cursor_column}"
        engine = create_engine(self.config.url)
        try:
            with engine.connect() as conn:
                result = conn.execution_options(stream_results=True).execute(text(sql), params)
                while rows := result.mappings().fetchmany(ROWS_PER_FETCH):
                    for row in rows:
                        yield dict(row)
        except Exception as exc:
            raise FatalApiError(f"{self.source}: the warehouse query failed: {exc}", system=self.source) from exc
        finally:
            engine.dispose()

    def _file_rows(self) -> Iterator[dict[str, Any]]:
        assert self.config.file
        path = Path(self.config.file)
        if not path.exists():
            raise FatalApiError(f"{self.source}: file {path} does not exist", system=self.source)
        if path.suffix.lower() == ".parquet":
            pq = _parquet(self.source, path)
            for batch in pq.ParquetFile(path).iter_batches(batch_size=ROWS_PER_FETCH):
                yield from batch.to_pylist()
            return
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                yield {k: (None if v == "" else v) for k, v in row.items()}

    def read(self, since: datetime | None) -> Iterator[Record | RejectedRecord]:
        rows = self._sql_rows(since) if self.config.query else self._file_rows()
        for row in rows:
            record = self.mapper.map(self._with_id(row))
            if (
                since is not None and self.config.file and not isinstance(record, RejectedRecord)
                and record.source_updated_at is not None and record.source_updated_at < since
            ):
                continue
            yield record


class TabularConnector:
    """``usage`` or ``billing``: one stream from a warehouse query or a file."""

    def __init__(self, name: str, entity: str, config: TabularSourceConfig, stats: ApiStats | None = None) -> None:
        self.name = name
        self.stats = stats or ApiStats()
        self._stream = TabularStream(name, entity, config)

    def check(self) -> None:
        """The file exists, or the warehouse answers."""
        config = self._stream.config
        if config.file:
            path = Path(config.file)
            if not path.exists():
                raise FatalApiError(f"{self.name}: file {config.file} does not exist", system=self.name)
            if path.suffix.lower() == ".parquet":
                _parquet(self.name, path)
            return
        assert config.url
        engine = create_engine(config.url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            raise FatalApiError(f"{self.name}: cannot reach the warehouse: {exc}", system=self.name) from exc
        finally:
            engine.dispose()

    def streams(self) -> list[Stream]:
        return [self._stream]
