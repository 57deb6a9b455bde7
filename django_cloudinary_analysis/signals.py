"""The app's own signals: public API for sites to hook into.

Both are sent after the transaction that made the change commits.
"""

from __future__ import annotations

from django.dispatch import Signal

#: An analysis reached a final state (succeeded, failed, skipped, cancelled).
#: sender: the Analysis class; kwargs: ``analysis`` (the Analysis instance).
analysis_finished = Signal()

#: An object's moderation verdict changed.
#: sender: the site's model class; kwargs: ``instance`` (the object),
#: ``old`` and ``new`` (ModerationStatus values), ``decision``
#: (the ModerationDecision row that records it).
moderation_changed = Signal()

#: A statement of reasons was stored for a rejection.
#: sender: the site's model class; kwargs: ``instance`` (the object),
#: ``statement`` (StatementOfReasons), ``owner`` (the uploader or None).
statement_issued = Signal()

#: An uploader appealed a rejection; the object is back in review.
#: sender: the site's model class; kwargs: ``instance``, ``appeal`` (Appeal).
appeal_opened = Signal()

#: A reviewer's decision (or a content change) closed an appeal.
#: sender: the site's model class; kwargs: ``instance``, ``appeal`` (with its
#: ``status`` outcome), ``decision`` (the closing ModerationDecision).
appeal_closed = Signal()
