"""Random walks over taggit write-back (seeded, so every run walks the same):
whatever the order of analyses and a person's edits, a person's tags stay and
the app's follow the content."""

from __future__ import annotations

import random

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import TestCase

from django_cloudinary_analysis.writeback import tags as writeback_tags
from tests.models import TaggedPhoto
from tests.support.writeback import labels

pytestmark = pytest.mark.django_db

#: App labels and a person's tags overlap on purpose ("cat", "dog").
LABELS = ["cat", "dog", "rug"]
PERSONAL = ["cat", "dog", "miso"]
WALKS = 20
STEPS = 10


class TagEdits:
    """One object; a model of whose each tag is, checked after every step."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.photo = TaggedPhoto.objects.create()
        TaggedPhoto.objects.filter(pk=self.photo.pk).update(image="tagged/walk.png")
        self.photo.refresh_from_db()
        self.ct = ContentType.objects.get_for_model(TaggedPhoto).pk
        self.person: set[str] = set()  # tags that are the person's
        self.app: set[str] = set()  # tags the app put there
        self.withdrawn: set[str] = set()  # app tags the person removed
        self.found: set[str] = set()  # the labels of the current analysis
        self.log: list[str] = []

    def actual(self) -> set[str]:
        return set(TaggedPhoto.objects.get(pk=self.photo.pk).tags.names())

    def expect_reconciled(self) -> None:
        self.withdrawn &= self.found
        self.app = self.found - self.person - self.withdrawn

    def analyse(self) -> None:
        self.found = {n for n in LABELS if self.rng.random() < 0.5}
        labels(*[(name, 0.9) for name in sorted(self.found)])
        with TestCase.captureOnCommitCallbacks(execute=True):
            self.photo.analyze(force=True, types=["google_tagging"])
        self.expect_reconciled()
        self.log.append(f"analyse {sorted(self.found)}")

    def reconcile_again(self) -> None:
        writeback_tags.reconcile(TaggedPhoto, str(self.photo.pk), "tags", self.ct)
        self.expect_reconciled()
        self.log.append("reconcile")

    def person_adds(self) -> None:
        name = self.rng.choice(PERSONAL)
        if name not in self.person | self.app:
            self.photo.tags.add(name)
            self.person.add(name)
        self.log.append(f"person adds {name}")

    def person_removes(self) -> None:
        present = sorted(self.person | self.app)
        if not present:
            return
        name = self.rng.choice(present)
        self.photo.tags.remove(name)
        if name in self.person:
            self.person.discard(name)
        else:
            self.app.discard(name)
            self.withdrawn.add(name)
        self.log.append(f"person removes {name}")

    def person_adds_an_apps_tag_again(self) -> None:
        """Remove an app tag and add it back (a new item): now the person's."""
        if not self.app:
            return
        name = self.rng.choice(sorted(self.app))
        self.photo.tags.remove(name)
        self.photo.tags.add(name)
        self.app.discard(name)
        self.person.add(name)
        self.log.append(f"person re-adds {name}")

    def step(self) -> None:
        action = self.rng.choice(
            [
                self.analyse,
                self.analyse,
                self.reconcile_again,
                self.person_adds,
                self.person_removes,
                self.person_adds_an_apps_tag_again,
            ]
        )
        action()
        expected = self.person | self.app
        assert self.actual() == expected, self.log


@pytest.fixture
def no_auto_analysis(settings):  # type: ignore[no-untyped-def]
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "AUTO_ANALYZE": False,
        "DEDUP": False,
    }


def test_random_walks_keep_a_persons_tags_and_follow_the_content(
    no_auto_analysis,
) -> None:
    for seed in range(WALKS):
        walk = TagEdits(random.Random(seed))
        for _ in range(STEPS):
            walk.step()
