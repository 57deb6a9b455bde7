"""The uploader's appeal page (a small form beside the API's ``POST …/appeal/``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.apps import apps
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from django_cloudinary_analysis.accountability import appeals, statements
from django_cloudinary_analysis.accountability.models import (
    Appeal,
    StatementOfReasons,
)
from django_cloudinary_analysis.mixins import AnalyzedMedia
from django_cloudinary_analysis.models import ModerationDecision

if TYPE_CHECKING:
    from django.db.models import Model
    from django.http import HttpRequest, HttpResponse


class AppealForm(forms.Form):
    """The uploader's note."""

    note = forms.CharField(
        label=_("Why is the decision wrong?"),
        required=False,
        max_length=appeals.NOTE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 5}),
    )


def media_object(content_type: str, object_id: str) -> Model:
    """The mixin object ``app_label.model`` / pk, or 404."""
    app_label, dot, model_name = content_type.partition(".")
    try:
        model = apps.get_model(app_label, model_name) if dot else None
    except LookupError:
        model = None
    if model is None or not issubclass(model, AnalyzedMedia):
        raise Http404
    try:
        obj = model._default_manager.filter(pk=object_id).first()
    except (ValueError, ValidationError):
        obj = None
    if obj is None:
        raise Http404
    return obj  # type: ignore[no-any-return]


@login_required
def appeal(request: HttpRequest, content_type: str, object_id: str) -> HttpResponse:
    """Show the uploader the statement of reasons and take their appeal."""
    obj = media_object(content_type, object_id)
    if not appeals.is_owner(obj, request.user):
        raise Http404  # not the uploader: do not confirm the object exists
    form = AppealForm(request.POST or None)
    error = None
    if request.method == "POST" and form.is_valid():
        try:
            appeals.open_appeal(obj, request.user, form.cleaned_data["note"])  # type: ignore[arg-type]
        except appeals.AppealError as exc:
            error = exc.message
    decision = ModerationDecision.objects.for_object(obj).first()
    statement = (
        StatementOfReasons.objects.filter(
            decision__content_type=decision.content_type_id,
            decision__object_id=decision.object_id,
        ).first()
        if decision is not None
        else None
    )
    history = Appeal.objects.filter(
        content_type=decision.content_type_id if decision else None,
        object_id=str(obj.pk),
    ).order_by("-created_at")
    context: dict[str, Any] = {
        "object": obj,
        "decision": decision,
        "form": form,
        "error": error,
        "appeals": history,
        "can_appeal": decision is not None and statements.is_appealable(decision),
    }
    if statement is not None:
        context.update(statements.statement_context(statement))
        context["appealable"] = context["can_appeal"]
    template = "cloudinary_analysis/accountability/appeal.html"
    return render(request, template, context, status=400 if error else 200)
