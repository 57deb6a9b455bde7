"""Querysets shared by the app's tables (no model imports: the write-back and
accountability tables use them without importing ``models``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.signals import setting_changed
from django.db import connections, models
from django.db.models import Q
from django.db.transaction import TransactionManagementError

if TYPE_CHECKING:
    from django.db.models import Model


def analysis_model() -> Any:
    """``Analysis`` from the app registry (querysets cannot import
    ``models``, which imports them)."""
    return apps.get_model("cloudinary_analysis", "Analysis")


def media_tag_model() -> Any:
    """``MediaTag`` from the app registry."""
    return apps.get_model("cloudinary_analysis", "MediaTag")


#: Per (default manager, database): the compiled SELECT of one object by
#: primary key, or None where that is not a plain SELECT.
_LOADERS: dict[tuple[Any, str], Any] = {}


def load_object(model: type[Model], pk: Any) -> Model | None:
    """The object ``model._default_manager.filter(pk=pk).first()`` would find
    (``None`` if none), without compiling the query again each time.

    The worker loads one object per analysis; Django's compilation of that
    query is about a tenth of a run's CPU time. The SQL of the first load is
    kept and reused when the default manager's query has the primary key as
    its only parameter (a manager filtering on a value of its own, or one
    that selects related rows, annotates or prefetches, is compiled every
    time), and the row is turned into the object as the ORM does it.
    """
    manager = model._default_manager
    db = manager.db
    key = (manager, db)
    if key not in _LOADERS:
        queryset = manager.filter(pk=pk)[:1]
        _LOADERS[key] = _compile_loader(queryset, pk)
        return next(iter(queryset), None)
    loader = _LOADERS[key]
    if loader is None:
        return next(iter(manager.filter(pk=pk)[:1]), None)
    sql, converters, init_list = loader
    connection = connections[db]
    with connection.cursor() as cursor:
        cursor.execute(sql, [_pk_param(model, pk, connection)])
        row = cursor.fetchone()
    if row is None:
        return None
    return model.from_db(db, init_list, converted(converters, row, connection))


def _pk_param(model: type[Model], pk: Any, connection: Any) -> Any:
    """The query parameter ``filter(pk=pk)`` sends (an exact lookup)."""
    field = model._meta.pk
    assert field is not None
    return field.get_db_prep_value(field.get_prep_value(pk), connection, prepared=True)


def _compile_loader(queryset: Any, pk: Any) -> tuple[str, Any, list[str]] | None:
    plain = _plain_select(queryset)
    if plain is None:
        return None
    sql, params, converters, init_list = plain
    if list(params) != [_pk_param(queryset.model, pk, connections[queryset.db])]:
        return None
    return sql, converters, init_list


def _plain_select(queryset: Any) -> tuple[str, Any, Any, list[str]] | None:
    """The compiled SELECT of a queryset of one model's own columns (no
    related rows, annotations or prefetches), its parameters, the columns'
    converters and attribute names; None for any other queryset."""
    if queryset._prefetch_related_lookups or queryset.query.annotations:
        return None
    compiler = queryset.query.get_compiler(queryset.db)
    sql, params = compiler.as_sql()
    klass_info = compiler.klass_info
    if klass_info is None or klass_info.get("related_klass_infos"):
        return None
    fields = klass_info["select_fields"]
    if fields != list(range(len(fields))) or compiler.col_count != len(fields):
        return None
    columns = [column for column, _, _ in compiler.select]
    return (
        sql,
        params,
        column_converters(columns, compiler.connection),
        [column.target.attname for column in columns],
    )


#: Stands for the object id while a query is compiled (no id holds a NUL).
_OBJECT_ID = "\x00dca:object-id\x00"
#: Per (query builder, default manager, database): the compiled statement of
#: ``build(object id)`` and where the object's id goes, or None.
_TEMPLATES: dict[tuple[Any, Any, str], Any] = {}


def first_row(
    build: Callable[[Model, str], models.QuerySet[Any]], obj: Model
) -> tuple[Any, ...] | None:
    """``build(obj, str(obj.pk)).first()`` of a ``values_list`` query about
    ``obj``, compiled once per model.

    ``build`` filters the app's rows by the object id it is given and the
    object's own row by ``pk`` (its default manager, last in the query). The
    statement is compiled once with a stand-in object id; later calls only
    put the object's id in. Where the default manager brings parameters of
    its own, the query is compiled every time (see ``load_object``).
    """
    manager = type(obj)._default_manager
    key = (build, manager, manager.db)
    if key not in _TEMPLATES:
        _TEMPLATES[key] = _compile_template(build, obj)
    template = _TEMPLATES[key]
    if template is None:
        return build(obj, str(obj.pk)).first()  # type: ignore[no-any-return]
    sql, params, slots, converters, locks = template
    connection = connections[manager.db]
    if locks and connection.get_autocommit():
        raise TransactionManagementError(
            "select_for_update cannot be used outside of a transaction."
        )
    params = list(params)
    for slot in slots:
        params[slot] = str(obj.pk)
    params[-1] = _pk_param(type(obj), obj.pk, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    return tuple(converted(converters, row, connection))


def _compile_template(build: Callable[[Model, str], Any], obj: Model) -> Any:
    model = type(obj)
    manager = model._default_manager
    if _compile_loader(manager.filter(pk=obj.pk)[:1], obj.pk) is None:
        return None
    queryset = build(obj, _OBJECT_ID)
    queryset = (queryset if queryset.ordered else queryset.order_by("pk"))[:1]
    compiler = queryset.query.get_compiler(queryset.db)
    sql, params = compiler.as_sql()
    pk = _pk_param(model, obj.pk, compiler.connection)
    slots = [i for i, value in enumerate(params) if value == _OBJECT_ID]
    if not slots or not params or params[-1] != pk or pk == _OBJECT_ID:
        return None
    columns = [column for column, _, _ in compiler.select]
    if compiler.col_count != len(columns):
        return None
    converters = column_converters(columns, compiler.connection)
    locks = bool(
        queryset.query.select_for_update
        and compiler.connection.features.has_select_for_update
    )
    return sql, tuple(params), slots, converters, locks


def column_converters(columns: Sequence[Any], connection: Any) -> list[Any]:
    """Each column with the converters the ORM applies to its fetched value."""
    return [
        (
            column,
            connection.ops.get_db_converters(column)
            + column.get_db_converters(connection),
        )
        for column in columns
    ]


def converted(
    converters: Sequence[Any], row: Sequence[Any], connection: Any
) -> list[Any]:
    """``row``'s values as the ORM returns them (``column_converters``)."""
    values = []
    for (column, functions), value in zip(converters, row, strict=True):
        for convert in functions:
            value = convert(value, column, connection)
        values.append(value)
    return values


#: Per (query builder, model of the object): the compiled SELECT of
#: ``build(obj, object id)``'s rows, or None.
_ROWS: dict[tuple[Any, Any], Any] = {}


def object_rows(
    build: Callable[[Model, str], models.QuerySet[Any]], obj: Model
) -> list[Any]:
    """``list(build(obj, str(obj.pk)))``: rows of one of the app's tables
    about ``obj``, with the statement compiled once per model of ``obj``.

    ``build`` returns a plain queryset of one model (no related rows,
    annotations or prefetches) filtered by the object id it is given; the
    rows are built as the ORM builds them.
    """
    key = (build, type(obj))
    if key not in _ROWS:
        _ROWS[key] = _compile_rows(build, obj)
    template = _ROWS[key]
    if template is None:
        return list(build(obj, str(obj.pk)))
    sql, params, slots, converters, init_list, model, db = template
    connection = connections[db]
    params = list(params)
    for slot in slots:
        params[slot] = str(obj.pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    return [
        model.from_db(db, init_list, converted(converters, row, connection))
        for row in found
    ]


def _compile_rows(build: Callable[[Model, str], Any], obj: Model) -> Any:
    queryset = build(obj, _OBJECT_ID)
    plain = _plain_select(queryset)
    if plain is None:
        return None
    sql, params, converters, init_list = plain
    slots = [i for i, value in enumerate(params) if value == _OBJECT_ID]
    if not slots:
        return None
    return sql, tuple(params), slots, converters, init_list, queryset.model, queryset.db


def _forget_loaders(**kwargs: Any) -> None:
    _LOADERS.clear()
    _TEMPLATES.clear()
    _ROWS.clear()


setting_changed.connect(_forget_loaders, dispatch_uid="dca_forget_loaders")


def object_pairs(keys: Iterable[tuple[int, str]]) -> Q:
    """A condition matching rows of any of the (content type id, object id) keys."""
    where = Q(pk__in=[])
    for ct_id, object_id in keys:
        where |= Q(content_type_id=ct_id, object_id=object_id)
    return where


class ObjectQuerySet(models.QuerySet):
    """Lookups by the generic (content type, object id) pair."""

    def for_object(self, obj: Model) -> ObjectQuerySet:
        """Rows that belong to ``obj``."""
        return self.filter(
            content_type=ContentType.objects.get_for_model(obj),
            object_id=str(obj.pk),
        )

    def for_model(self, model: type[Model]) -> ObjectQuerySet:
        """Rows that belong to objects of ``model``."""
        return self.filter(content_type=ContentType.objects.get_for_model(model))
