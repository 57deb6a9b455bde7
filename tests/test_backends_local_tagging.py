"""The offline tagger: real ImageNet labels from the example's committed ONNX model.

The model (EfficientNet-Lite0, exported by
example_project/models/export_efficientnet.py) and the photos
(scikit-image's CC0 / public-domain samples) are committed files, so these
tests run offline with onnxruntime only.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest
from django.core.files.storage import FileSystemStorage

from django_cloudinary_analysis import analysis_types
from django_cloudinary_analysis.backends.base import Media
from django_cloudinary_analysis.backends.local import LocalBackend, tagging
from django_cloudinary_analysis.exceptions import ConfigurationError

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "example_project" / "models"
PHOTOS = ROOT / "example_project" / "sample_photos"
MODEL_NAME = "local-efficientnet-lite0 (ImageNet-1k)"


def load_export_script() -> ModuleType:
    path = MODELS / "export_efficientnet.py"
    spec = importlib.util.spec_from_file_location("export_efficientnet", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXPORT = load_export_script()
MODEL = MODELS / "efficientnet-lite0.onnx"
LABELS = MODELS / "imagenet-labels.txt"
OPTIONS = {
    "tagging_model": str(MODEL),
    "tagging_model_sha256": EXPORT.SHA256[MODEL.name],
    "tagging_labels": str(LABELS),
    "tagging_labels_sha256": EXPORT.SHA256[LABELS.name],
}


def photo(name: str) -> Media:
    return Media(name=name, storage=FileSystemStorage(location=PHOTOS))


def top5(name: str) -> list[dict[str, object]]:
    backend = LocalBackend(**OPTIONS, tagging_min_score=0.0)
    result = backend.analyze("google_tagging", photo(name), {})
    return result.analysis["label_annotations"]["labels"]


def test_the_cat_is_tagged_with_cat_classes():
    labels = [item["label"] for item in top5("cat.jpg")]
    assert len(labels) == 5
    # ImageNet's three domestic-cat classes, whatever their order.
    cats = {"tabby", "tiger cat", "Egyptian cat"}
    assert labels[0] in cats
    assert cats <= set(labels), labels


def test_the_coffee_is_tagged_espresso_and_cup():
    labels = top5("coffee.jpg")
    assert labels[0]["label"] == "espresso"
    assert float(labels[0]["score"]) > 0.5  # type: ignore[arg-type]
    assert "cup" in [item["label"] for item in labels]


def test_answers_are_marked_with_the_model_and_normalise_to_tags():
    backend = LocalBackend(**OPTIONS)
    assert backend.supports("google_tagging")
    analysis = backend.analyze("google_tagging", photo("coffee.jpg"), {}).analysis
    assert analysis["model"] == MODEL_NAME
    scores = [item["score"] for item in analysis["label_annotations"]["labels"]]
    assert scores == sorted(scores, reverse=True)
    assert all(score >= 0.05 for score in scores)  # the default min_score
    normalised = analysis_types.get("google_tagging").normaliser(
        "google_tagging", analysis, {}
    )
    assert normalised.tags[0].name == "espresso"


def test_without_a_model_tagging_is_not_available_offline():
    backend = LocalBackend()
    assert not backend.supports("google_tagging")
    reason = backend.unsupported_reason("google_tagging")
    assert "not available offline" in reason and "tagging_model" in reason


def test_a_model_with_another_checksum_is_refused(tmp_path):
    tampered = tmp_path / MODEL.name
    data = bytearray(MODEL.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    backend = LocalBackend(**{**OPTIONS, "tagging_model": str(tampered)})

    with pytest.raises(ConfigurationError) as info:
        backend.analyze("google_tagging", photo("cat.jpg"), {})
    message = str(info.value)
    assert f"expected {OPTIONS['tagging_model_sha256']}" in message
    assert "corrupt, truncated or not the one configured" in message


def test_a_model_without_a_checksum_is_refused():
    backend = LocalBackend(**{**OPTIONS, "tagging_model_sha256": None})
    with pytest.raises(ConfigurationError, match="tagging_model_sha256"):
        backend.analyze("google_tagging", photo("cat.jpg"), {})


def test_labels_that_do_not_fit_the_model_are_refused(tmp_path):
    short = tmp_path / "labels.txt"
    short.write_text("\n".join(LABELS.read_text().splitlines()[:999]) + "\n")
    with pytest.raises(ConfigurationError, match=r"1000 classes but .* names 999"):
        tagging.classifier(MODEL, OPTIONS["tagging_model_sha256"], short)


def test_a_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot be read"):
        tagging.classifier(tmp_path / "nope.onnx", "0" * 64, LABELS)


# -- the export script's checksums ------------------------------------------------


def test_the_committed_files_match_the_export_scripts_checksums(capsys):
    assert EXPORT.main(["--check"]) == 0
    assert "checksums match" in capsys.readouterr().out


def test_the_export_script_refuses_a_changed_file(tmp_path, capsys):
    for name in EXPORT.SHA256:
        shutil.copy(MODELS / name, tmp_path / name)
    with (tmp_path / LABELS.name).open("a") as fh:
        fh.write("an extra class\n")

    with pytest.raises(EXPORT.ChecksumMismatch) as info:
        EXPORT.check_all(tmp_path)
    digest = EXPORT.sha256_of(tmp_path / LABELS.name)
    assert f"imagenet-labels.txt has SHA-256 {digest}" in str(info.value)
    assert f"expected {EXPORT.SHA256[LABELS.name]}" in str(info.value)
    (tmp_path / MODEL.name).unlink()
    with pytest.raises(EXPORT.ChecksumMismatch, match="missing"):
        EXPORT.check(tmp_path / MODEL.name, EXPORT.SHA256[MODEL.name])


def test_the_example_settings_pin_the_same_checksums():
    settings = (
        ROOT / "example_project" / "example_project" / "settings.py"
    ).read_text()
    for digest in EXPORT.SHA256.values():
        assert digest in settings


@pytest.mark.parametrize("size", [(1024, 1), (1, 1024), (3, 5), (600, 400)])
def test_any_image_shape_becomes_the_models_input(size):
    from PIL import Image

    crop = tagging.centre_crop(Image.new("L", size, 128), (224, 224))
    assert (crop.size, crop.mode) == ((224, 224), "RGB")
