"""Querysets shared by the app's tables (no model imports: the write-back and
accountability tables use them without importing ``models``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core.signals import setting_changed
from django.db import connections, models
from django.db.models import Q

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
    sql, columns, init_list = loader
    connection = connections[db]
    with connection.cursor() as cursor:
        cursor.execute(sql, [_pk_param(model, pk, connection)])
        row = cursor.fetchone()
    if row is None:
        return None
    values = []
    for column, value in zip(columns, row, strict=True):
        for convert in connection.ops.get_db_converters(
            column
        ) + column.get_db_converters(connection):
            value = convert(value, column, connection)
        values.append(value)
    return model.from_db(db, init_list, values)


def _pk_param(model: type[Model], pk: Any, connection: Any) -> Any:
    """The query parameter ``filter(pk=pk)`` sends (an exact lookup)."""
    field = model._meta.pk
    assert field is not None
    return field.get_db_prep_value(field.get_prep_value(pk), connection, prepared=True)


def _compile_loader(queryset: Any, pk: Any) -> tuple[str, list[Any], list[str]] | None:
    if queryset._prefetch_related_lookups or queryset.query.annotations:
        return None
    compiler = queryset.query.get_compiler(queryset.db)
    sql, params = compiler.as_sql()
    klass_info = compiler.klass_info
    if klass_info is None or klass_info.get("related_klass_infos"):
        return None
    if list(params) != [_pk_param(queryset.model, pk, compiler.connection)]:
        return None
    fields = klass_info["select_fields"]
    if fields != list(range(len(fields))) or compiler.col_count != len(fields):
        return None
    columns = [column for column, _, _ in compiler.select]
    return sql, columns, [column.target.attname for column in columns]


def _forget_loaders(**kwargs: Any) -> None:
    _LOADERS.clear()


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
