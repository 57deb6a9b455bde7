"""Querysets of analyses and tags: the worker's one-statement row writes
(claim, elect, finish, store with the tags, insert the queued rows).

``models`` imports this module, so it names the models through the app
registry (``analysis_model()``, ``media_tag_model()``) rather than importing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connections, models
from django.utils import timezone

from django_cloudinary_analysis.querysets import (
    ObjectQuerySet,
    analysis_model,
    column_converters,
    converted,
    media_tag_model,
)
from django_cloudinary_analysis.statuses import UNFINISHED, AnalysisStatus
from django_cloudinary_analysis.tag_querysets import TAG_COLUMNS, tags_json

if TYPE_CHECKING:
    from django_cloudinary_analysis.models import Analysis


_INSERTS: dict[tuple[str, str, int], tuple[list[str], str]] = {}


def _insert_sql(connection: Any, count: int) -> tuple[list[str], str]:
    """The attribute names and the INSERT … RETURNING of ``count`` new
    analyses, built once per connection and row count."""
    key = (connection.alias, connection.vendor, count)
    if key not in _INSERTS:
        meta = analysis_model()._meta
        qn = connection.ops.quote_name
        fields = [f for f in meta.concrete_fields if not f.primary_key]
        one = "(" + ", ".join(["%s"] * len(fields)) + ")"
        _INSERTS[key] = (
            [f.attname for f in fields],
            f"INSERT INTO {qn(meta.db_table)}"  # noqa: S608 (this model's names)
            f" ({', '.join(qn(f.column) for f in fields)})"
            f" VALUES {', '.join([one] * count)}"
            f" RETURNING {qn(meta.pk.column)}",
        )
    return _INSERTS[key]


_DEFAULTS: dict[tuple[str, ...], tuple[list[Any], dict[str, int]]] = {}


def _queued_defaults(
    model: Any, attnames: list[str]
) -> tuple[list[Any], dict[str, int]]:
    """A new analysis's value of each of ``attnames``, and where each
    attname is in that list; worked out once."""
    key = tuple(attnames)
    if key not in _DEFAULTS:
        blank = model()
        _DEFAULTS[key] = (
            [getattr(blank, name) for name in attnames],
            {name: i for i, name in enumerate(attnames)},
        )
    return _DEFAULTS[key]


_CONVERTERS: dict[tuple[str, str], list[tuple[Any, list[Any]]]] = {}


def _converters(connection: Any) -> list[tuple[Any, list[Any]]]:
    """Per concrete field of Analysis: its column and the database's value
    converters (what the ORM applies to a fetched row), computed once."""
    key = (connection.alias, connection.vendor)
    if key not in _CONVERTERS:
        table = analysis_model()._meta.db_table
        _CONVERTERS[key] = column_converters(
            [field.get_col(table) for field in analysis_model()._meta.concrete_fields],
            connection,
        )
    return _CONVERTERS[key]


_SQL: dict[tuple[Any, ...], str] = {}


def _cached(connection: Any, shape: tuple[Any, ...], build: Callable[[], str]) -> str:
    """The worker's statements are built once per connection and shape (the
    text then stays the same, so psycopg's query cache keeps its parsing)."""
    key = (connection.alias, connection.vendor, *shape)
    sql = _SQL.get(key)
    if sql is None:
        sql = _SQL[key] = build()
    return sql


class AnalysisQuerySet(ObjectQuerySet):
    """Queries over analyses."""

    def unfinished(self) -> AnalysisQuerySet:
        """Analyses not yet in a final state."""
        return self.filter(status__in=UNFINISHED)

    def succeeded(self) -> AnalysisQuerySet:
        """Analyses that produced a result."""
        return self.filter(status=AnalysisStatus.SUCCEEDED)

    def claim(
        self,
        pk: int,
        *,
        task_id: str,
        statuses: Iterable[str],
        same_task: bool = False,
    ) -> Analysis | None:
        """Move analysis ``pk`` from one of ``statuses`` to running; return it.

        ``same_task`` claims only a row that task ``task_id`` claimed before
        (the redelivery of a message whose worker died). The claim clears the
        row's content key: a running row with a key is the one sending that
        content (``dca_analysis_one_sender``); dedup stores it again.

        One ``UPDATE … RETURNING`` where the database has it (PostgreSQL,
        SQLite 3.35+): the row comes back with the content key another
        analysis of the same file already computed (``sibling_key``) and,
        except on PostgreSQL, whether tags of its (object, field, type) exist
        (``had_tags``), so the worker reads nothing else about the analysis.
        ``None`` when the row was not in one of ``statuses`` (claimed
        elsewhere, finished, deleted).
        """
        now = timezone.now()
        statuses = [str(status) for status in statuses]
        connection = connections[self.db]
        if not connection.features.can_return_columns_from_insert:
            return self._claim_then_read(
                pk, task_id=task_id, statuses=statuses, same_task=same_task
            )
        fields = self.model._meta.concrete_fields
        sql = _cached(
            connection,
            ("claim", len(statuses), same_task),
            lambda: self._claim_sql(connection, len(statuses), same_task),
        )
        params = [
            str(AnalysisStatus.RUNNING),
            connection.ops.adapt_datetimefield_value(now),
            task_id,
            pk,
            *statuses,
            *([task_id] if same_task else []),
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        values = converted(_converters(connection), row[: len(fields)], connection)
        analysis = self.model.from_db(self.db, [f.attname for f in fields], values)
        analysis.sibling_key = row[len(fields)] or ""
        if len(row) > len(fields) + 1:
            analysis.had_tags = bool(row[-1])
        return analysis

    def _claim_sql(self, connection: Any, statuses: int, same_task: bool) -> str:
        meta = self.model._meta
        qn = connection.ops.quote_name
        table = qn(meta.db_table)
        columns = ", ".join(f"{table}.{qn(f.column)}" for f in meta.concrete_fields)
        sibling = (
            # Quoted identifiers of this model only; every value is a parameter.
            f"(SELECT s.{qn('content_key')} FROM {table} s"  # noqa: S608
            f" WHERE s.{qn('content_type_id')} = {table}.{qn('content_type_id')}"
            f" AND s.{qn('object_id')} = {table}.{qn('object_id')}"
            f" AND s.{qn('field_name')} = {table}.{qn('field_name')}"
            f" AND s.{qn('file_name')} = {table}.{qn('file_name')}"
            f" AND s.{qn('content_key')} <> '' LIMIT 1)"
        )
        tag_table = qn(media_tag_model()._meta.db_table)
        # Whether old tags exist, so a result without tags can skip deleting
        # them. Not on PostgreSQL: there the DELETE rides in the result's
        # statement, and this join would cost more to plan than it saves.
        had_tags = (
            ""
            if connection.vendor == "postgresql"
            else (
                f", EXISTS (SELECT 1 FROM {tag_table} t"  # noqa: S608
                f" INNER JOIN {table} a"
                f" ON a.{qn(meta.pk.column)} = t.{qn('analysis_id')}"
                f" WHERE t.{qn('content_type_id')} = {table}.{qn('content_type_id')}"
                f" AND t.{qn('object_id')} = {table}.{qn('object_id')}"
                f" AND t.{qn('field_name')} = {table}.{qn('field_name')}"
                f" AND a.{qn('analysis_type')} = {table}.{qn('analysis_type')})"
            )
        )
        placeholders = ", ".join(["%s"] * statuses)
        same = f" AND {qn('task_id')} = %s" if same_task else ""
        return (
            f"UPDATE {table} SET {qn('status')} = %s, {qn('started_at')} = %s,"  # noqa: S608
            f" {qn('attempts')} = {qn('attempts')} + 1, {qn('task_id')} = %s,"
            f" {qn('content_key')} = ''"
            f" WHERE {qn(meta.pk.column)} = %s AND {qn('status')} IN ({placeholders})"
            f"{same} RETURNING {columns}, {sibling}{had_tags}"
        )

    def elect(
        self,
        analysis: Analysis,
        *,
        lease: datetime,
        deadline: datetime,
    ) -> bool:
        """Store ``analysis.content_key`` on the running row, making it the
        one sender of that content, type and extras, unless another analysis
        of them is running (since ``lease``), waiting (since ``deadline``) or
        succeeded. One conditional UPDATE; raises ``IntegrityError`` when a
        copy stored it first (``dca_analysis_one_sender``)."""
        connection = connections[self.db]
        sql = _cached(connection, ("elect",), lambda: self._elect_sql(connection))
        adapt = connection.ops.adapt_datetimefield_value
        key = analysis.content_key
        params = [
            key,
            analysis.pk,
            "running",
            key,
            analysis.analysis_type,
            analysis.params_hash,
            analysis.pk,
            "running",
            adapt(lease),
            "waiting",
            adapt(deadline),
            "succeeded",
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return bool(cursor.rowcount)

    def _elect_sql(self, connection: Any) -> str:
        qn = connection.ops.quote_name
        table = qn(self.model._meta.db_table)
        pk = qn(self.model._meta.pk.column)
        status, started = qn("status"), qn("started_at")
        return (
            f"UPDATE {table} SET {qn('content_key')} = %s"  # noqa: S608
            f" WHERE {pk} = %s AND {status} = %s AND NOT EXISTS ("
            f"SELECT 1 FROM {table} u WHERE u.{qn('content_key')} = %s"
            f" AND u.{qn('analysis_type')} = %s AND u.{qn('params_hash')} = %s"
            f" AND u.{pk} <> %s AND ((u.{status} = %s AND u.{started} >= %s)"
            f" OR (u.{status} = %s AND u.{started} >= %s) OR u.{status} = %s))"
        )

    def finish(self, pk: int, from_statuses: Iterable[str], **fields: Any) -> bool:
        """Write ``fields`` on analysis ``pk`` if it is in one of
        ``from_statuses``: one conditional UPDATE built without the query
        compiler. False when the row moved on (nothing written)."""
        connection = connections[self.db]
        statuses = [str(status) for status in from_statuses]
        sql = _cached(
            connection,
            ("finish", *fields, len(statuses)),
            lambda: self._finish_sql(connection, fields, len(statuses)),
        )
        params = [*self._field_values(connection, fields), pk, *statuses]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return bool(cursor.rowcount)

    def finish_with_tags(
        self,
        analysis: Analysis,
        from_statuses: Iterable[str],
        fields: dict[str, Any],
        tags: Sequence[Any],
    ) -> bool:
        """``finish`` and ``MediaTag.objects.replace`` in one statement
        (PostgreSQL: data-modifying CTEs, atomic without BEGIN/COMMIT); the
        tags change only when the row did. The tags travel as one JSON array,
        so the statement's text and its number of parameters do not depend on
        how many there are."""
        connection = connections[self.db]
        statuses = [str(status) for status in from_statuses]
        sql = _cached(
            connection,
            ("finish_with_tags", *fields, len(statuses)),
            lambda: self._finish_with_tags_sql(connection, fields, len(statuses)),
        )
        owner = [
            analysis.content_type_id,
            analysis.object_id,
            analysis.field_name,
        ]
        params = [
            *self._field_values(connection, fields),
            analysis.pk,
            *statuses,
            *owner,
            analysis.analysis_type,
            analysis.pk,
            *owner,
            tags_json(tags),
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return bool(row and row[0])

    def _finish_with_tags_sql(
        self, connection: Any, fields: Iterable[str], statuses: int
    ) -> str:
        qn = connection.ops.quote_name
        update = self._finish_sql(connection, fields, statuses)
        tag_table = qn(media_tag_model()._meta.db_table)
        table = qn(self.model._meta.db_table)
        columns = ", ".join(qn(c) for c in TAG_COLUMNS)
        return (
            f"WITH upd AS ({update} RETURNING 1),"  # noqa: S608
            f" del AS (DELETE FROM {tag_table} WHERE EXISTS (SELECT 1 FROM upd)"
            f" AND {qn('analysis_id')} IN (SELECT {qn('id')} FROM {table}"
            f" WHERE {qn('content_type_id')} = %s AND {qn('object_id')} = %s"
            f" AND {qn('field_name')} = %s AND {qn('analysis_type')} = %s)),"
            f" ins AS (INSERT INTO {tag_table} ({columns})"
            f" SELECT %s::bigint, %s::integer, %s::varchar, %s::varchar, t.name,"
            f" t.label, t.confidence, t.analysis_type, t.box"
            f" FROM jsonb_to_recordset(%s::jsonb) AS t(name varchar,"
            f" label varchar, confidence double precision, analysis_type varchar,"
            f" box jsonb) WHERE EXISTS (SELECT 1 FROM upd))"
            f" SELECT count(*) FROM upd"
        )

    def _finish_sql(self, connection: Any, fields: Iterable[str], statuses: int) -> str:
        qn = connection.ops.quote_name
        meta = self.model._meta
        assignments = ", ".join(
            f"{qn(meta.get_field(name).column)} = %s"  # type: ignore[union-attr]
            for name in fields
        )
        return (
            f"UPDATE {qn(meta.db_table)} SET {assignments}"  # noqa: S608
            f" WHERE {qn(meta.pk.column)} = %s"
            f" AND {qn('status')} IN ({', '.join(['%s'] * statuses)})"
        )

    def _field_values(self, connection: Any, fields: dict[str, Any]) -> list[Any]:
        """The parameters of ``fields`` as the ORM would send them."""
        ops = connection.ops
        values = []
        for name, value in fields.items():
            field = self.model._meta.get_field(name)
            if isinstance(field, models.ForeignKey):
                value = value.pk if isinstance(value, models.Model) else value
            elif value is None:
                pass
            elif isinstance(field, models.JSONField):
                value = ops.adapt_json_value(value, field.encoder)
            elif isinstance(field, models.DateTimeField):
                value = ops.adapt_datetimefield_value(value)
            else:
                value = str(value) if isinstance(value, str) else value
            values.append(value)
        return values

    def insert_queued(self, rows: list[Analysis]) -> list[Analysis]:
        """Insert new queued analyses in one multi-row INSERT; set their ids.

        The rows' values go through :meth:`insert_queued_values`; one INSERT
        per row where the database cannot return the ids of a multi-row one.
        """
        if not rows:
            return rows
        connection = connections[self.db]
        if not connection.features.can_return_rows_from_bulk_insert:
            # One INSERT each: a multi-row one would not tell the ids here.
            for row in rows:
                row.save(force_insert=True, using=self.db)
            return rows
        attnames = _insert_sql(connection, 1)[0]
        now = timezone.now()
        ids = self.insert_queued_values(
            [{name: getattr(row, name) for name in attnames} for row in rows], now=now
        )
        for row, pk in zip(rows, ids, strict=True):
            row.pk = pk
            row.created_at = now
            row._state.adding = False
            row._state.db = self.db
        return rows

    def insert_queued_values(
        self, rows: Sequence[dict[str, Any]], *, now: datetime | None = None
    ) -> list[int]:
        """Insert new analyses given as ``{attname: value}`` in one statement;
        return their ids in order.

        The save path's only statement of ours, built here (no model
        instances, no queryset compiler): a field a row leaves out gets its
        default, ``created_at`` is ``now``. ``INSERT … RETURNING`` the ids
        where the database has it, else one INSERT per row.
        """
        if not rows:
            return []
        if now is None:
            now = timezone.now()
        connection = connections[self.db]
        if not connection.features.can_return_rows_from_bulk_insert:
            made: list[Any] = [self.model(**row) for row in rows]
            return [row.pk for row in self.insert_queued(made)]
        ops = connection.ops
        attnames, sql = _insert_sql(connection, len(rows))
        defaults, position = _queued_defaults(self.model, attnames)
        params_at, created_at = position["params"], position["created_at"]
        created = ops.adapt_datetimefield_value(now)
        values: list[Any] = []
        for row in rows:
            one = defaults.copy()
            for name, value in row.items():
                one[position[name]] = value
            one[params_at] = ops.adapt_json_value(one[params_at], None)
            one[created_at] = created
            values += one
        with connection.cursor() as cursor:
            cursor.execute(sql, values)
            return [pk for (pk,) in cursor.fetchall()]

    def _claim_then_read(
        self, pk: int, *, task_id: str, statuses: list[str], same_task: bool
    ) -> Analysis | None:
        claimable = self.filter(pk=pk, status__in=statuses)
        if same_task:
            claimable = claimable.filter(task_id=task_id)
        sibling_key = (
            self.filter(pk=pk).values_list("content_key", flat=True).first() or ""
        )
        claimed = claimable.update(
            content_key="",
            status=AnalysisStatus.RUNNING,
            started_at=timezone.now(),
            attempts=models.F("attempts") + 1,
            task_id=task_id,
        )
        if not claimed:
            return None
        analysis = analysis_model().objects.using(self.db).get(pk=pk)
        analysis.sibling_key = sibling_key or (
            analysis_model()
            .objects.using(self.db)
            .filter(
                content_type_id=analysis.content_type_id,
                object_id=analysis.object_id,
                field_name=analysis.field_name,
                file_name=analysis.file_name,
            )
            .exclude(content_key="")
            .values_list("content_key", flat=True)
            .first()
            or ""
        )
        return analysis
