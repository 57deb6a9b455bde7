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
