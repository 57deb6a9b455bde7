"""What the analyses found for one object, shared by the home page and the demo."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Model

from django_cloudinary_analysis import services
from django_cloudinary_analysis.models import Analysis, AnalysisStatus

#: Below this focus component (0–1) the local heuristic's image is blurred.
FOCUS_BLURRED = 0.3


@dataclass
class FieldReport:
    """The newest analyses of one file field, summarised."""

    field_name: str
    file_name: str
    url: str = ""
    statuses: dict[str, str] = field(default_factory=dict)
    quality: dict[str, Any] | None = None
    #: Why the quality is what it is, when the backend says (the local one does).
    quality_notes: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    text: str = ""
    tags: list[str] = field(default_factory=list)
    #: analysis type → reason, for skipped and failed analyses.
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    #: analysis type → the model that answered, as the backend names it.
    models: dict[str, str] = field(default_factory=dict)
    #: analysis type → the Analysis whose result was reused.
    reused: dict[str, Analysis] = field(default_factory=dict)

    @property
    def quality_text(self) -> str:
        """Return e.g. ``high 0.99``, or the image_quality status."""
        if self.quality:
            text = f"{self.quality['word']} {self.quality['score']:.2f}"
            if self.quality_notes:
                text += f" ({', '.join(self.quality_notes)})"
            return text
        return self.statuses.get("image_quality", "-")

    @property
    def skipped_briefly(self) -> dict[str, str]:
        """Return each skip reason's first clause (the rest is in the admin)."""
        return {t: reason.split(": ", 1)[0] for t, reason in self.skipped.items()}

    @property
    def unfinished(self) -> list[str]:
        """Return the analysis types still queued, running or waiting."""
        done = {
            AnalysisStatus.SUCCEEDED,
            AnalysisStatus.FAILED,
            AnalysisStatus.SKIPPED,
            AnalysisStatus.CANCELLED,
        }
        return [t for t, s in self.statuses.items() if s not in done]


def _raw_analysis(analysis: Analysis) -> dict[str, Any]:
    raw = analysis.raw if isinstance(analysis.raw, dict) else {}
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    inner = data.get("analysis") if isinstance(data, dict) else None
    return inner if isinstance(inner, dict) else {}


def quality_notes(analysis: dict[str, Any]) -> list[str]:
    """Name the problems the local heuristic measured (blur, exposure)."""
    details = analysis.get("details")
    if not isinstance(details, dict):
        return []
    exposure = details.get("exposure")
    if exposure in ("under", "over"):
        # A dark or washed-out frame has weak edges whatever its focus, so
        # only exposure is named then.
        return [f"{exposure}-exposed"]
    focus = details.get("focus")
    if isinstance(focus, (int, float)) and focus < FOCUS_BLURRED:
        return ["blurred"]
    return []


def field_reports(obj: Model) -> list[FieldReport]:
    """Summarise the current analyses of ``obj``, one report per file field."""
    reports: dict[str, FieldReport] = {}
    analyses = sorted(services.current_analyses(obj), key=lambda a: a.pk)
    for analysis in analyses:
        report = reports.setdefault(
            analysis.field_name,
            FieldReport(
                analysis.field_name,
                analysis.file_name,
                url=getattr(obj, analysis.field_name).url,
            ),
        )
        atype = analysis.analysis_type
        report.statuses[atype] = analysis.status
        if analysis.status == AnalysisStatus.SKIPPED:
            report.skipped[atype] = analysis.error_message
        elif analysis.status == AnalysisStatus.FAILED:
            report.failed[atype] = analysis.error_message
        if analysis.status != AnalysisStatus.SUCCEEDED:
            continue
        if analysis.reused_from_id:
            report.reused[atype] = analysis.reused_from
        model = _raw_analysis(analysis).get("model")
        if model:
            report.models[atype] = str(model)
        result = analysis.result or {}
        if result.get("quality"):
            report.quality = result["quality"]
            report.quality_notes = quality_notes(_raw_analysis(analysis))
        for response in result.get("responses") or []:
            report.answers.append(f"{response.get('value')}")
        if atype == "cld_text":
            lines = str(_raw_analysis(analysis).get("text", "")).splitlines()
            report.text = " / ".join(line for line in lines if line.strip())
        for tag in analysis.tags.all():
            if tag.name not in report.tags:
                report.tags.append(tag.name)
    return list(reports.values())
