"""Object identity: one expression each way between a pk and the stored text."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.db.models.functions import Cast, Concat, Replace

from django_cloudinary_analysis.options import object_id_expression, pk_as_text
from tests.models import Photo, UUIDPhoto


@pytest.mark.parametrize("native", [True, False])
def test_both_directions_agree_on_how_uuids_are_stored(monkeypatch, native):
    """Both follow the database's own UUID column, never its vendor name.

    MariaDB 10.7+ has a native UUID type but is not PostgreSQL: a vendor
    check and a feature check disagree there.
    """
    monkeypatch.setattr(connection.features, "has_native_uuid_field", native)
    to_pk = object_id_expression(UUIDPhoto)
    to_text = pk_as_text(UUIDPhoto)
    assert isinstance(to_pk, Replace) is (not native)
    assert isinstance(to_text, Concat) is (not native)


def test_integer_keys_cast_both_ways():
    assert isinstance(object_id_expression(Photo), Cast)
    assert isinstance(pk_as_text(Photo), Cast)


@pytest.mark.django_db
def test_a_uuid_object_is_found_from_its_stored_text():
    photo = UUIDPhoto.objects.create()
    assert isinstance(photo.pk, uuid.UUID)
    found = UUIDPhoto.objects.annotate(stored=pk_as_text(UUIDPhoto)).get(
        stored=str(photo.pk)
    )
    assert found == photo
