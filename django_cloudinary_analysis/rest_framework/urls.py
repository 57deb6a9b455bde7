"""Routes a site includes::

    path("api/analysis/", include("django_cloudinary_analysis.rest_framework.urls"))

``router`` holds the analyses routes (for sites that merge routers);
``urlpatterns`` adds the object summary and the moderation queue.
"""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from django_cloudinary_analysis.rest_framework.appeals import AppealView
from django_cloudinary_analysis.rest_framework.views import (
    AnalysisViewSet,
    MediaObjectViewSet,
    ModerationViewSet,
)

app_name = "cloudinary_analysis_api"

router = SimpleRouter()
router.register("analyses", AnalysisViewSet, basename="analysis")

object_detail = MediaObjectViewSet.as_view({"get": "retrieve"})
object_reanalyze = MediaObjectViewSet.as_view({"post": "reanalyze"})
moderation_list = ModerationViewSet.as_view({"get": "list"})
moderation_approve = ModerationViewSet.as_view({"post": "approve"})
moderation_reject = ModerationViewSet.as_view({"post": "reject"})

urlpatterns = [
    *router.urls,
    path(
        "objects/<str:content_type>/<str:object_id>/",
        object_detail,
        name="object-detail",
    ),
    path(
        "objects/<str:content_type>/<str:object_id>/reanalyze/",
        object_reanalyze,
        name="object-reanalyze",
    ),
    path("moderation/", moderation_list, name="moderation-list"),
    path(
        "moderation/<str:content_type>/<str:object_id>/approve/",
        moderation_approve,
        name="moderation-approve",
    ),
    path(
        "moderation/<str:content_type>/<str:object_id>/reject/",
        moderation_reject,
        name="moderation-reject",
    ),
    path(
        "moderation/<str:content_type>/<str:object_id>/appeal/",
        AppealView.as_view(),
        name="moderation-appeal",
    ),
]
