"""SOQL AST -> SQL over the emulator's tables, with bound parameters, and rows -> Salesforce records.

Relationship paths (``Owner.Email``, ``Account.Owner.Email``, polymorphic ``What.Name``) become LEFT
JOINs; a null foreign key renders the relationship as ``null``. SOQL's null semantics are kept:
``Field != 'x'`` and ``NOT IN`` also match records whose field is null.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sandbox.salesforce.schema import NUMBER_TYPES, Field, Schema, SObject
from sandbox.salesforce.soql import And, Comparison, Condition, Not, Or, Path, Query, SoqlError, Value
from sandbox.salesforce.values import format_datetime, full_id, to_json


def invalid_type(name: str) -> SoqlError:
    return SoqlError(
        "INVALID_TYPE",
        f"sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to "
        "append the '__c' after the entity name. Please reference your WSDL or the describe call for the "
        "appropriate names.",
    )


def invalid_field(name: str, sobject: str) -> SoqlError:
    return SoqlError(
        "INVALID_FIELD",
        f"No such column '{name}' on entity '{sobject}'. If you are attempting to use a custom field, be sure "
        "to append the '__c' after the custom field name. Please reference your WSDL or the describe call for "
        "the appropriate names.",
    )


@dataclass(frozen=True)
class Column:
    """A selected field: where it sits in the record (relationship names, then the field name)."""

    path: tuple[str, ...]
    field: Field


@dataclass(frozen=True)
class Relation:
    """A selected relationship: the column holding its foreign key decides null and the record type."""

    path: tuple[str, ...]
    fk_column: int  # index into Plan.select_exprs


@dataclass
class _Join:
    aliases: dict[str, str]  # target object name -> table alias
    objects: list[SObject]
    fk_expr: str
    path: tuple[str, ...]


@dataclass
class Plan:
    """A compiled query: how to list the matching rows in order, and how to fetch and render a page of them."""

    sobject: SObject
    count: bool
    from_sql: str
    where_sql: str
    params: list[Any]
    order_sql: str
    select_exprs: list[str]
    columns: list[tuple[Column, int]]  # (column, index into select_exprs)
    relations: list[Relation]
    limit: int | None
    offset: int | None
    fields: list[Field] = field(default_factory=list)

    def rowids_sql(self) -> tuple[str, list[Any]]:
        """SQL listing the rowids of every matching record, in query order."""
        sql = f"SELECT t0.rowid {self.from_sql} WHERE {self.where_sql} ORDER BY {self.order_sql}"
        return self._paged(sql)

    def count_sql(self) -> tuple[str, list[Any]]:
        sql = f"SELECT 1 {self.from_sql} WHERE {self.where_sql}"
        inner, params = self._paged(sql)
        return f"SELECT COUNT(*) FROM ({inner})", params

    def _paged(self, sql: str) -> tuple[str, list[Any]]:
        params = list(self.params)
        if self.limit is not None or self.offset:
            sql += " LIMIT ? OFFSET ?"
            params += [self.limit if self.limit is not None else -1, self.offset or 0]
        return sql, params

    def page_sql(self, size: int) -> str:
        """SQL fetching the rows of ``size`` rowids (bound in order); each row starts with its rowid."""
        marks = ",".join("?" * size)
        return f"SELECT t0.rowid, {', '.join(self.select_exprs)} {self.from_sql} WHERE t0.rowid IN ({marks})"


class Compiler:
    """Compiles one SOQL query against a schema; ``today`` and ``now`` anchor date ranges (UTC)."""

    def __init__(self, schema: Schema, now: datetime) -> None:
        self.schema = schema
        self.now = now.astimezone(UTC)
        self.joins: dict[tuple[str, ...], _Join] = {}
        self.join_sql: list[str] = []

    def compile(self, query: Query, include_deleted: bool) -> Plan:
        base = self.schema.get(query.sobject)
        if base is None:
            raise invalid_type(query.sobject)
        self.base = base
        root = _Join({base.name: "t0"}, [base], "", ())
        self.joins[()] = root
        select_exprs = ["t0.Id"]
        columns: list[tuple[Column, int]] = []
        relations: list[Relation] = []
        seen_relations: set[tuple[str, ...]] = set()
        for path in query.fields:
            join, f, expr = self._resolve(path)
            for depth in range(1, len(join.path) + 1):
                rel_path = join.path[:depth]
                if rel_path not in seen_relations:
                    seen_relations.add(rel_path)
                    select_exprs.append(self.joins[rel_path].fk_expr)
                    relations.append(Relation(rel_path, len(select_exprs) - 1))
            select_exprs.append(expr)
            columns.append((Column((*join.path, f.name), f), len(select_exprs) - 1))
        params: list[Any] = []
        where = self._condition(query.where, params, strict=False) if query.where is not None else "1"
        if not include_deleted and base.field("IsDeleted") is not None:
            where = f"t0.IsDeleted = 0 AND ({where})"
        order = []
        for item in query.order_by:
            _, f, expr = self._resolve(item.path)
            collate = " COLLATE NOCASE" if f.is_text else ""
            direction = " DESC" if item.descending else ""
            nulls = "" if item.nulls_last is None else (" NULLS LAST" if item.nulls_last else " NULLS FIRST")
            order.append(f"{expr}{collate}{direction}{nulls}")
        order.append("t0.rowid")
        return Plan(
            sobject=base,
            count=query.count,
            from_sql=f"FROM {base.table} t0" + "".join(self.join_sql),
            where_sql=where,
            params=params,
            order_sql=", ".join(order),
            select_exprs=select_exprs,
            columns=columns,
            relations=relations,
            limit=query.limit,
            offset=query.offset,
        )

    def _join(self, parent: _Join, name: str) -> _Join:
        owner_field: Field | None = None
        for obj in parent.objects:
            owner_field = obj.relationship(name)
            if owner_field is not None:
                break
        targets = [t for t in (self.schema.get(n) for n in owner_field.reference_to) if t] if owner_field else []
        if owner_field is None or not targets:
            where = parent.objects[0].name
            raise SoqlError(
                "INVALID_FIELD",
                f"Didn't understand relationship '{name}' in field path. If you are attempting to use a custom "
                f"relationship, be sure to append the '__r' after the custom relationship name. Please reference "
                f"your WSDL or the describe call for the appropriate names. (entity '{where}')",
            )
        path = (*parent.path, owner_field.relationship_name or name)
        existing = self.joins.get(path)
        if existing is not None:
            return existing
        fk_expr = self._field_expr(parent, owner_field.name)
        aliases: dict[str, str] = {}
        for target in targets:
            alias = f"j{len(self.join_sql)}"
            aliases[target.name] = alias
            self.join_sql.append(f" LEFT JOIN {target.table} {alias} ON {alias}.Id = {fk_expr}")
        join = _Join(aliases, targets, fk_expr, path)
        self.joins[path] = join
        return join

    @staticmethod
    def _field_expr(join: _Join, name: str) -> str:
        exprs = [f"{join.aliases[o.name]}.{o.field(name).name}" for o in join.objects if o.field(name)]  # type: ignore[union-attr]
        return exprs[0] if len(exprs) == 1 else f"COALESCE({', '.join(exprs)})"

    def _resolve(self, path: Path) -> tuple[_Join, Field, str]:
        """The join holding a path's last field, the field, and its SQL expression."""
        parts = list(path.parts)
        if len(parts) > 1 and parts[0].lower() == self.base.name.lower():
            parts = parts[1:]  # SOQL allows the object name as a prefix: Account.Name FROM Account
        join = self.joins[()]
        for rel in parts[:-1]:
            join = self._join(join, rel)
        name = parts[-1]
        found = next((f for f in (o.field(name) for o in join.objects) if f is not None), None)
        if found is None:
            raise invalid_field(str(path) if len(parts) > 1 else name, join.objects[0].name)
        return join, found, self._field_expr(join, found.name)

    def _condition(self, cond: Condition, params: list[Any], strict: bool) -> str:
        if isinstance(cond, And):
            return "(" + " AND ".join(self._condition(c, params, strict) for c in cond.items) + ")"
        if isinstance(cond, Or):
            return "(" + " OR ".join(self._condition(c, params, strict) for c in cond.items) + ")"
        if isinstance(cond, Not):
            return f"(NOT {self._condition(cond.item, params, strict=True)})"
        sql = self._comparison(cond, params)
        return f"COALESCE({sql}, 0)" if strict else sql

    def _comparison(self, cmp: Comparison, params: list[Any]) -> str:
        _, f, expr = self._resolve(cmp.path)
        collate = " COLLATE NOCASE" if f.is_text else ""
        if cmp.op in ("IN", "NOT IN"):
            values = [v for v in cmp.values if v.kind != "null"]
            has_null = len(values) != len(cmp.values)
            bound = [self._bind(f, v, cmp.op) for v in values]
            params.extend(bound)
            parts = [f"{expr}{collate} IN ({','.join('?' * len(bound))})"] if bound else []
            if has_null:
                parts.append(f"{expr} IS NULL")
            inside = "(" + " OR ".join(parts) + ")" if parts else "0"
            if cmp.op == "IN":
                return inside
            return f"({expr} IS NULL OR NOT {inside})" if not has_null else f"(NOT COALESCE({inside}, 0))"
        value = cmp.values[0]
        if cmp.op == "LIKE":
            if not f.is_text and f.type not in ("id", "reference"):
                raise SoqlError("INVALID_FIELD", f"invalid operator on {f.type} field: LIKE {f.name}")
            params.append(value.like)
            return f"{expr} LIKE ? ESCAPE '\\'"
        if value.kind == "null":
            if cmp.op == "=":
                return f"{expr} IS NULL"
            if cmp.op == "!=":
                return f"{expr} IS NOT NULL"
            raise SoqlError("MALFORMED_QUERY", f"invalid operator with null: {cmp.op}")
        if value.kind == "date_range":
            return self._date_range(f, expr, cmp.op, value, params)
        params.append(self._bind(f, value, cmp.op))
        if cmp.op == "!=":
            return f"({expr} IS NULL OR {expr}{collate} != ?)"
        return f"{expr}{collate} {cmp.op} ?"

    def _bind(self, f: Field, value: Value, op: str) -> Any:
        """A literal as the stored value it is compared to; refuses a literal of the wrong type."""
        kind = value.kind
        ok: Any = None
        if f.type == "boolean" and kind == "boolean":
            ok = int(bool(value.value))
        elif f.type in NUMBER_TYPES and kind == "number":
            ok = value.value
        elif f.type == "date" and kind == "date" and isinstance(value.value, date):
            ok = value.value.isoformat()
        elif f.type == "datetime" and kind == "datetime" and isinstance(value.value, datetime):
            ok = format_datetime(value.value)
        elif (f.is_text or f.type in ("id", "reference")) and kind == "string":
            ok = full_id(str(value.value)) if f.type in ("id", "reference") else value.value
        if ok is None:
            expected = {"datetime": "dateTime", "int": "number", "double": "number", "currency": "number"}
            quoted = "be enclosed in quotes" if f.is_text else "not be enclosed in quotes"
            raise SoqlError(
                "INVALID_FIELD",
                f"value of filter criterion for field '{f.name}' must be of type {expected.get(f.type, f.type)} "
                f"and should {quoted}",
            )
        return ok

    def _date_range(self, f: Field, expr: str, op: str, value: Value, params: list[Any]) -> str:
        """``CreatedDate = LAST_N_DAYS:30`` and friends: a range of whole UTC days ending today."""
        today = self.now.date()
        if value.range_name == "LAST_N_DAYS":
            start, end = today - timedelta(days=value.range_days), today + timedelta(days=1)
        elif value.range_name == "N_DAYS_AGO":
            start = today - timedelta(days=value.range_days)
            end = start + timedelta(days=1)
        else:
            start = today - timedelta(days=value.range_days)
            end = start + timedelta(days=1)
        if f.type == "datetime":
            lo: Any = format_datetime(datetime(start.year, start.month, start.day, tzinfo=UTC))
            hi: Any = format_datetime(datetime(end.year, end.month, end.day, tzinfo=UTC))
        elif f.type == "date":
            lo, hi = start.isoformat(), end.isoformat()
        else:
            raise SoqlError("INVALID_FIELD", f"date literal on a field of type {f.type}: {f.name}")
        sql = {
            "=": f"({expr} >= ? AND {expr} < ?)",
            "!=": f"({expr} IS NULL OR {expr} < ? OR {expr} >= ?)",
            "<": f"{expr} < ?",
            "<=": f"{expr} < ?",
            ">": f"{expr} >= ?",
            ">=": f"{expr} >= ?",
        }[op]
        params.extend({"=": [lo, hi], "!=": [lo, hi], "<": [lo], "<=": [hi], ">": [hi], ">=": [lo]}[op])
        return sql


def render(plan: Plan, row: tuple[Any, ...], schema: Schema, base_path: str) -> dict[str, Any]:
    """One fetched row (without its leading rowid) as a REST record with ``attributes`` and nested parents.

    Keys follow the SELECT order; a relationship appears where its first field was selected.
    """
    record: dict[str, Any] = {"attributes": _attributes(plan.sobject.name, row[0], base_path)}
    nodes: dict[tuple[str, ...], dict[str, Any] | None] = {(): record}
    for rel in plan.relations:
        fk = row[rel.fk_column]
        if nodes.get(rel.path[:-1]) is None or fk is None:
            nodes[rel.path] = None
            continue
        target = schema.by_prefix(fk)
        nodes[rel.path] = {"attributes": _attributes(target.name if target else "Name", fk, base_path)}
    for column, index in plan.columns:
        path = column.path
        if len(path) == 1:  # the common case: a field of the queried object
            record[path[0]] = to_json(column.field, row[index])
            continue
        holder: dict[str, Any] = record
        for depth in range(1, len(path)):
            node = nodes[path[:depth]]
            holder.setdefault(path[depth - 1], node)
            if node is None:
                break
            holder = node
        else:
            holder[path[-1]] = to_json(column.field, row[index])
    return record


def _attributes(sobject: str, record_id: str, base_path: str) -> dict[str, str]:
    return {"type": sobject, "url": f"{base_path}/sobjects/{sobject}/{record_id}"}
