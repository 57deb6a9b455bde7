"""Admin actions and their forms: re-analyse, approve, reject with a note.

Every change goes through :mod:`django_cloudinary_analysis.services`; the
helpers here report through ``message_user`` and catch only the app's own
exceptions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.db.models import QuerySet
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from django_cloudinary_analysis import services
from django_cloudinary_analysis.admin.display import acting_user
from django_cloudinary_analysis.exceptions import AnalysisError
from django_cloudinary_analysis.mixins import analysis_config

if TYPE_CHECKING:
    from django.db.models import Model
    from django.http import HttpRequest

logger = logging.getLogger(__name__)

#: One scheduling job: the object (None when it no longer exists) and the
#: keyword arguments of ``services.schedule``.
ScheduleJob = tuple["Model | None", Mapping[str, Any]]


class NoteForm(forms.Form):
    """The note a reviewer leaves with a decision."""

    note = forms.CharField(
        label=_("Note"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("Stored with the decision and shown in the verdict history."),
    )


class ReviewForm(NoteForm):
    """Approve, reject or release one object."""

    APPROVE = "approve"
    REJECT = "reject"
    RELEASE = "release"

    verdict = forms.ChoiceField(
        choices=[
            (APPROVE, _("Approve")),
            (REJECT, _("Reject")),
            (RELEASE, _("Let the policy decide")),
        ],
        widget=forms.HiddenInput,
    )


class ReanalyzeForm(forms.Form):
    """Which configured analyses to run again, and whether to force them."""

    types = forms.MultipleChoiceField(
        label=_("Analyses"),
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The analyses configured for this model."),
    )
    force = forms.BooleanField(
        label=_("Force"),
        required=False,
        help_text=_(
            "Run again even when an analysis already succeeded for the current "
            "file, and do not reuse an earlier result for the same content."
        ),
    )

    def __init__(
        self, *args: Any, type_choices: Sequence[tuple[str, str]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["types"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = list(type_choices)
        field.initial = [value for value, _label in type_choices]


def type_choices(model: type[Model]) -> list[tuple[str, str]]:
    """The analysis types configured for ``model``, labelled with their fields."""
    fields_by_type: dict[str, list[str]] = {}
    for field_name, specs in analysis_config(model).items():
        for spec in specs:
            fields_by_type.setdefault(spec.type, [])
            if field_name not in fields_by_type[spec.type]:
                fields_by_type[spec.type].append(field_name)
    return [
        (name, f"{name} ({', '.join(fields)})")
        for name, fields in fields_by_type.items()
    ]


def confirmation_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    template: str,
    action: str,
    title: str,
    objects: Sequence[Model],
    form: forms.Form,
) -> TemplateResponse:
    """An intermediate page that posts the action back with the form."""
    opts = model_admin.model._meta
    changelist_url = reverse(
        f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_changelist"
    )
    preserved = model_admin.get_preserved_filters(request)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "opts": opts,
        "app_label": opts.app_label,
        "action": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "selected_pks": [str(pk) for pk in queryset.values_list("pk", flat=True)],
        "objects": objects,
        "form": form,
        "media": model_admin.media + form.media,
        "cancel_url": add_preserved_filters(
            {"preserved_filters": preserved, "opts": opts}, changelist_url
        ),
    }
    return TemplateResponse(request, template, context)


def report_error(
    model_admin: Any, request: HttpRequest, obj: Model, error: Exception, text: str
) -> None:
    """Tell the user one object failed (``text`` has object and error)."""
    model_admin.message_user(
        request, text % {"object": obj, "error": error}, messages.ERROR
    )


def decide_objects(
    model_admin: Any,
    request: HttpRequest,
    objects: Iterable[Model],
    verdict: str,
    note: str = "",
) -> int:
    """Approve or reject each object through services; report the counts."""
    decide: Callable[..., Any] = (
        services.approve if verdict == ReviewForm.APPROVE else services.reject
    )
    done = 0
    for obj in objects:
        try:
            decide(obj, user=acting_user(request), note=note)
        except AnalysisError as exc:
            logger.warning(
                "admin %s of %r failed: %s",
                verdict,
                obj,
                exc,
                extra={"object_id": str(obj.pk)},
            )
            report_error(
                model_admin,
                request,
                obj,
                exc,
                gettext("%(object)s could not be updated: %(error)s"),
            )
        else:
            done += 1
    if verdict == ReviewForm.APPROVE:
        text = ngettext(
            "Approved %(count)d object.", "Approved %(count)d objects.", done
        )
    else:
        text = ngettext(
            "Rejected %(count)d object.", "Rejected %(count)d objects.", done
        )
    model_admin.message_user(
        request, text % {"count": done}, messages.SUCCESS if done else messages.WARNING
    )
    return done


def reject_with_note(
    model_admin: Any,
    request: HttpRequest,
    queryset: QuerySet,
    objects: Sequence[Model],
    action: str,
) -> TemplateResponse | None:
    """Ask for a note on an intermediate page, then reject the objects."""
    if request.POST.get("post"):
        form = NoteForm(request.POST)
        if form.is_valid():
            decide_objects(
                model_admin,
                request,
                objects,
                ReviewForm.REJECT,
                form.cleaned_data["note"],
            )
            return None
    else:
        form = NoteForm()
    return confirmation_page(
        model_admin,
        request,
        queryset,
        template="admin/cloudinary_analysis/reject_confirmation.html",
        action=action,
        title=gettext("Reject media"),
        objects=objects,
        form=form,
    )


def schedule_and_report(
    model_admin: Any, request: HttpRequest, jobs: Iterable[ScheduleJob]
) -> int:
    """Run ``services.schedule`` for each job and report what was queued.

    A job whose object is gone, one that fails with the app's error and one
    that queues nothing (already succeeded, no longer configured, no file)
    are each counted and reported; returns the number of analyses queued.
    """
    queued = missing = idle = failed = 0
    touched: set[tuple[type, Any]] = set()
    for obj, options in jobs:
        if obj is None:
            missing += 1
            continue
        try:
            created = services.schedule(obj, **options)
        except AnalysisError as exc:
            failed += 1
            report_error(
                model_admin,
                request,
                obj,
                exc,
                gettext("%(object)s could not be re-analysed: %(error)s"),
            )
            continue
        if created:
            queued += len(created)
            touched.add((type(obj), obj.pk))
        else:
            idle += 1
    if queued:
        # Two numbers, each with its own plural form.
        objects = ngettext("%d object", "%d objects", len(touched)) % len(touched)
        text = ngettext(
            "Queued %(count)d analysis of %(objects)s.",
            "Queued %(count)d analyses of %(objects)s.",
            queued,
        )
        model_admin.message_user(
            request, text % {"count": queued, "objects": objects}, messages.SUCCESS
        )
    elif idle or not failed:
        model_admin.message_user(
            request,
            gettext(
                "Nothing to re-run: the chosen analyses already succeeded for "
                "the current files (tick “Force” to run them again), are no "
                "longer configured, or the field holds no file."
            ),
            messages.WARNING,
        )
    if queued and idle:
        model_admin.message_user(
            request,
            ngettext(
                "%(count)d selection queued nothing: it already succeeded for "
                "the current file, is no longer configured, or the field holds "
                "no file.",
                "%(count)d selections queued nothing: they already succeeded for "
                "the current files, are no longer configured, or the fields hold "
                "no file.",
                idle,
            )
            % {"count": idle},
            messages.WARNING,
        )
    if missing:
        model_admin.message_user(
            request,
            ngettext(
                "%(count)d analysis belongs to a deleted object and was skipped.",
                "%(count)d analyses belong to deleted objects and were skipped.",
                missing,
            )
            % {"count": missing},
            messages.WARNING,
        )
    return queued
