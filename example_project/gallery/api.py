"""The gallery's own API, with verdicts and tags from the app's serializer mixin."""

from __future__ import annotations

from rest_framework import serializers, viewsets
from rest_framework.routers import DefaultRouter

from django_cloudinary_analysis.rest_framework.serializers import (
    AnalyzedMediaSerializerMixin,
)
from gallery.models import Photo, Product


class PhotoSerializer(AnalyzedMediaSerializerMixin, serializers.ModelSerializer):
    """A photo with its moderation status and tags."""

    class Meta:
        model = Photo
        fields = [
            "id",
            "title",
            "image",
            "uploaded_at",
            "moderation_status",
            "media_tags",
        ]


class ProductSerializer(AnalyzedMediaSerializerMixin, serializers.ModelSerializer):
    """A product with its two images, moderation status and tags."""

    class Meta:
        model = Product
        fields = [
            "id",
            "name",
            "photo",
            "label_image",
            "moderation_status",
            "media_tags",
        ]


class PhotoViewSet(viewsets.ReadOnlyModelViewSet):
    """Photos; ``?status=approved`` keeps one verdict."""

    serializer_class = PhotoSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        """Return every photo, or those with the verdict in ``?status=``."""
        queryset = Photo.objects.all()
        status = self.request.query_params.get("status")
        return queryset.filter(moderation_status=status) if status else queryset


class ProductViewSet(viewsets.ReadOnlyModelViewSet):
    """Products."""

    serializer_class = ProductSerializer
    queryset = Product.objects.all()


router = DefaultRouter()
router.register("photos", PhotoViewSet, basename="photo")
router.register("products", ProductViewSet, basename="product")
