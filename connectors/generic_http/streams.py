"""JSON-over-HTTP sources declared in YAML: endpoint, auth, paging style (cursor/page/offset/link), field paths.

NPS and intent are presets of this connector (``core.config.sources``), so a customer adds a vendor
without code.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from connectors.base import ApiStats, Paginator, Stream
from connectors.entities import finish_for
from connectors.fields import RecordMapper, get_path
from connectors.http import JsonHttpClient
from core.config.runtime import LimitsConfig
from core.config.sources import HttpSourceConfig, HttpStreamConfig, PagingConfig
from core.errors import ConfigError, FatalApiError
from core.records import RECORD_TYPES, Record, RejectedRecord


def auth_headers(config: HttpSourceConfig, key: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, query parameters) that carry the API key in the configured style."""
    style = config.auth.style
    if style == "none":
        return {}, {}
    if not key:
        raise ConfigError(f"source {config.name}: no API key is set")
    if style == "bearer":
        return {"Authorization": f"Bearer {key}"}, {}
    if style == "basic":
        return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}, {}
    if style == "header":
        return {config.auth.header: key}, {}
    return {}, {config.auth.query_param: key}


def format_since(since: datetime, style: str) -> str:
    since = since.astimezone(UTC)
    if style == "unix":
        return str(int(since.timestamp()))
    if style == "unix_ms":
        return str(int(since.timestamp() * 1000))
    if style == "date":
        return since.date().isoformat()
    return since.strftime("%Y-%m-%dT%H:%M:%SZ")


class HttpStream:
    """One endpoint of a JSON source."""

    def __init__(
        self, source: str, config: HttpStreamConfig, paging: PagingConfig, client: JsonHttpClient,
        params: dict[str, str],
    ) -> None:
        if "external_id" not in config.fields:
            raise ConfigError(f"source {source} stream {config.name}: fields must map external_id")
        self.source = source
        self.config = config
        self.paging = paging
        self.client = client
        self.auth_params = params
        self.name = config.name
        self.entity: str = config.entity
        self.primary_key = config.fields["external_id"]
        self.cursor_field = config.cursor_field
        self.mapper = RecordMapper(
            source=source,
            stream=config.name,
            record_type=RECORD_TYPES[config.entity],
            fields=config.fields,
            extra_fields=config.extra_fields,
            finish=finish_for(config.entity),
            constants=config.constants,
        )

    def _items(self, body: Any) -> list[Any]:
        items = get_path(body, self.config.records_path) if self.config.records_path and isinstance(body, dict) \
            else body
        if items is None:
            return []
        if not isinstance(items, list):
            raise FatalApiError(
                f"{self.source}: {self.config.path} answered no list at {self.config.records_path or 'the top level'}",
                system=self.source,
            )
        return items

    def pages(self, since: datetime | None) -> Iterator[list[Any]]:
        paging = self.paging
        params: dict[str, Any] = {**self.config.params, **self.auth_params}
        if since is not None and self.config.since_param:
            params[self.config.since_param] = format_since(since, self.config.since_format)
        if paging.style != "none":
            params[paging.size_param] = paging.size
        paginator = Paginator(self.source, self.config.path)
        url: str = self.config.path
        page_no = paging.start_page
        offset = 0
        while True:
            if paging.style == "page":
                params[paging.page_param] = page_no
            elif paging.style == "offset":
                params[paging.offset_param] = offset
            body, response = self.client.get_json(url, params)
            self.client.stats.page(self.source)
            items = self._items(body)
            yield items
            if paging.style == "cursor":
                token = get_path(body, paging.cursor_path) if isinstance(body, dict) else None
                paginator.advance(str(token) if token not in (None, "") else None)
                params[paging.cursor_param] = paginator.token
            elif paging.style == "link":
                nxt = (response.links.get("next") or {}).get("url")
                paginator.advance(nxt)
                url, params = (nxt or url), dict(self.auth_params)
            elif paging.style in ("page", "offset"):
                page_no += 1
                offset += len(items)
                paginator.advance(None if len(items) < paging.size else f"{page_no}:{offset}")
            else:
                paginator.advance(None)
            if paginator.finished:
                return

    def read(self, since: datetime | None) -> Iterator[Record | RejectedRecord]:
        for page in self.pages(since):
            for raw in page:
                if not isinstance(raw, dict):
                    yield RejectedRecord(source=self.source, stream=self.name, external_id=None,
                                         reason=f"item is not an object ({type(raw).__name__})")
                    continue
                yield self.mapper.map(raw)


class HttpConnector:
    """A JSON-over-HTTP source: every stream of one ``HttpSourceConfig``."""

    def __init__(
        self,
        config: HttpSourceConfig,
        *,
        base_url: str,
        api_key: str | None,
        limits: LimitsConfig,
        stats: ApiStats | None = None,
        ca_bundle: str | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        self.stats = stats or ApiStats()
        headers, params = auth_headers(config, api_key)
        self.client = JsonHttpClient(
            system=config.name, base_url=base_url, limits=limits.http, stats=self.stats,
            headers={**config.headers, **headers}, ca_bundle=ca_bundle,
        )
        self._streams = [HttpStream(config.name, s, config.paging, self.client, params) for s in config.streams]

    def check(self) -> None:
        """One small request to the first stream: proves the URL and the key work."""
        if self._streams:
            stream = self._streams[0]
            self.client.get_json(stream.config.path, {**stream.config.params, **stream.auth_params,
                                                      self.config.paging.size_param: 1})

    def streams(self) -> list[Stream]:
        return list(self._streams)
