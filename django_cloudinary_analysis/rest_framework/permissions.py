"""Who may use the API: staff by default, model permissions for writes.

``API_PERMISSION_CLASSES`` (import paths) replaces the default
``IsAdminUser``; whatever it says, write actions also need the app's model
permissions: ``cloudinary_analysis.reanalyze_media`` to re-run analyses and
``cloudinary_analysis.review_media`` to approve or reject.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rest_framework import permissions

from django_cloudinary_analysis.conf import import_setting
from django_cloudinary_analysis.models import (  # re-exported for the views
    REANALYZE_PERMISSION as REANALYZE_PERMISSION,
)
from django_cloudinary_analysis.models import (
    REVIEW_PERMISSION as REVIEW_PERMISSION,
)

if TYPE_CHECKING:
    from rest_framework.request import Request


DEFAULT_PERMISSION_CLASSES: tuple[type[permissions.BasePermission], ...] = (
    permissions.IsAdminUser,
)


def api_permission_classes() -> list[type[permissions.BasePermission]]:
    """The base permission classes: the setting's, else staff only."""
    configured = import_setting("API_PERMISSION_CLASSES")
    if configured is None:
        return list(DEFAULT_PERMISSION_CLASSES)
    return configured if isinstance(configured, list) else [configured]


class HasActionPermission(permissions.BasePermission):
    """Require the model permissions a view lists for the current action.

    Views map action names to permission strings in ``action_permissions``;
    actions not listed (the reads) need nothing beyond the base classes.
    """

    message = "You do not have permission to perform this action."

    def has_permission(self, request: Request, view: Any) -> bool:
        """Check the user holds every permission the action needs."""
        needed = getattr(view, "action_permissions", {}).get(
            getattr(view, "action", None), ()
        )
        if not needed:
            return True
        user = request.user
        return bool(user and user.is_authenticated and user.has_perms(needed))
