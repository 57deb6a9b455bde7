"""Realistic Analyze API bodies for tests and the loopback fake server.

Everything here follows ``/work/shared/analyze-api.md`` and is deterministic:
the same inputs always give the same dict (request ids are derived from the
inputs with a hash, never random, and timestamps are fixed).

Deterministic rules that tests may rely on:

* ``ai_vision_moderation`` answers one response per rejection question, in
  order: ``"yes"`` when the question mentions one of ``MODERATION_YES_WORDS``,
  ``"unknown"`` when it mentions one of ``MODERATION_UNKNOWN_WORDS``, else
  ``"no"``.
* ``ai_vision_general`` answers one response per prompt, in order.
* ``ai_vision_tagging`` returns only the definitions that "matched": those at
  even positions (the 1st, 3rd, 5th…), so at least one always matches.
* The detection models return a ``tags`` map of label → list of detections
  with ``bounding-box`` ``[x, y, width, height]``, ``confidence`` and
  ``categories``; ``shop_classifier`` detections have no box and
  ``cld_text`` carries the recognised text in ``attributes``.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

ANALYSIS_TYPES: tuple[str, ...] = (
    "ai_vision_general",
    "ai_vision_moderation",
    "ai_vision_tagging",
    "captioning",
    "cld_fashion",
    "cld_text",
    "coco",
    "google_logo_detection",
    "google_tagging",
    "human_anatomy",
    "image_quality",
    "lvis",
    "shop_classifier",
    "unidet",
    "watermark_detection",
)

#: Which add-on quota (``limits.items[].type``) each type reports spending.
QUOTA_FEATURES: dict[str, str] = {
    "ai_vision_general": "ai_vision",
    "ai_vision_moderation": "ai_vision",
    "ai_vision_tagging": "ai_vision",
    "google_tagging": "google_tagging",
    "google_logo_detection": "google_tagging",
}
DEFAULT_QUOTA_FEATURE = "object_detection"

MODERATION_YES_WORDS: tuple[str, ...] = ("weapon", "violence", "blood", "gore")
MODERATION_UNKNOWN_WORDS: tuple[str, ...] = ("unclear", "ambiguous", "minor")

DEFAULT_PROMPTS: list[str] = [
    "Describe the image in one sentence.",
    "How many animals are visible?",
]
DEFAULT_REJECTION_QUESTIONS: list[str] = [
    "Is there any nudity in the image?",
    "Does the image show a weapon?",
]
DEFAULT_TAG_DEFINITIONS: list[dict[str, str]] = [
    {"name": "cat", "description": "A domestic cat is visible"},
    {"name": "dog", "description": "A dog is visible"},
    {"name": "indoor", "description": "The photo was taken indoors"},
]

RESET_TIME = "2024-01-20T12:34:56Z"
ENTITY = "https://res.cloudinary.com/demo/image/upload/v1/samples/cat.jpg"

_DETECTION_TAGS: dict[str, dict[str, Any]] = {
    "coco": {
        "person": [
            {
                "bounding-box": [10.5, 20.0, 300.0, 640.0],
                "confidence": 0.93,
                "categories": ["person"],
            }
        ],
        "cat": [
            {
                "bounding-box": [412.0, 388.5, 220.25, 180.0],
                "confidence": 0.88,
                "categories": ["animal"],
            },
            {
                "bounding-box": [702.0, 401.0, 150.0, 122.5],
                "confidence": 0.61,
                "categories": ["animal"],
            },
        ],
        "dining table": [
            {
                "bounding-box": [0.0, 520.0, 1024.0, 248.0],
                "confidence": 0.72,
                "categories": ["furniture"],
            }
        ],
    },
    "lvis": {
        "cat": [
            {
                "bounding-box": [410.0, 385.0, 224.0, 184.0],
                "confidence": 0.9,
                "categories": ["animal"],
            }
        ],
        "mug": [
            {
                "bounding-box": [120.0, 470.0, 64.0, 80.0],
                "confidence": 0.57,
                "categories": ["kitchenware"],
            }
        ],
        "table": [
            {
                "bounding-box": [0.0, 515.0, 1024.0, 253.0],
                "confidence": 0.69,
                "categories": ["furniture"],
            }
        ],
    },
    "unidet": {
        "Cat": [
            {
                "bounding-box": [411.0, 386.0, 222.0, 182.0],
                "confidence": 0.86,
                "categories": ["Animal"],
            }
        ],
        "Table": [
            {
                "bounding-box": [2.0, 518.0, 1020.0, 250.0],
                "confidence": 0.66,
                "categories": ["Furniture"],
            }
        ],
    },
    "cld_fashion": {
        "coat": [
            {
                "bounding-box": [401.5, 310.2, 388.1, 702.9],
                "confidence": 0.87,
                "categories": ["fashion"],
                "attributes": {"length": ["knee length"], "color": ["beige"]},
            }
        ],
        "shoe": [
            {
                "bounding-box": [430.0, 1010.0, 90.5, 60.0],
                "confidence": 0.74,
                "categories": ["fashion"],
                "attributes": {"type": ["boot"]},
            },
            {
                "bounding-box": [610.0, 1012.0, 92.0, 58.5],
                "confidence": 0.71,
                "categories": ["fashion"],
                "attributes": {"type": ["boot"]},
            },
        ],
    },
    "cld_text": {
        "text": [
            {
                "bounding-box": [55.0, 40.0, 310.0, 48.0],
                "confidence": 0.95,
                "categories": ["text"],
                "attributes": {"text": "SUMMER SALE"},
            },
            {
                "bounding-box": [60.0, 100.0, 180.0, 30.0],
                "confidence": 0.81,
                "categories": ["text"],
                "attributes": {"text": "50% off"},
            },
        ]
    },
    "human_anatomy": {
        "face": [
            {
                "bounding-box": [120.0, 60.0, 90.0, 110.0],
                "confidence": 0.97,
                "categories": ["head"],
            }
        ],
        "hand": [
            {
                "bounding-box": [80.0, 300.0, 55.0, 60.0],
                "confidence": 0.82,
                "categories": ["arm"],
            },
            {
                "bounding-box": [260.0, 305.0, 52.0, 58.0],
                "confidence": 0.79,
                "categories": ["arm"],
            },
        ],
    },
    "shop_classifier": {
        "pet supplies": [{"confidence": 0.78, "categories": ["shop"]}],
        "home & garden": [{"confidence": 0.41, "categories": ["shop"]}],
    },
}


def _request_id(*parts: Any) -> str:
    """Return a 32-hex request id derived from the inputs."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.md5(blob, usedforsecurity=False).hexdigest()


def _moderation_value(question: str) -> str:
    text = question.casefold()
    if any(word in text for word in MODERATION_YES_WORDS):
        return "yes"
    if any(word in text for word in MODERATION_UNKNOWN_WORDS):
        return "unknown"
    return "no"


def sample_analysis(
    analysis_type: str, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Return a realistic ``data.analysis`` dict for ``analysis_type``."""
    params = params or {}
    if analysis_type == "ai_vision_general":
        prompts = params.get("prompts") or DEFAULT_PROMPTS
        return {
            "responses": [
                {"value": f"Answer {i + 1}: the image shows one cat on a table."}
                for i, _prompt in enumerate(prompts)
            ],
            "model_version": 1,
        }
    if analysis_type == "ai_vision_moderation":
        questions = params.get("rejection_questions") or DEFAULT_REJECTION_QUESTIONS
        return {
            "responses": [
                {"prompt": q, "value": _moderation_value(q)} for q in questions
            ],
            "model_version": 1,
        }
    if analysis_type == "ai_vision_tagging":
        definitions = params.get("tag_definitions") or DEFAULT_TAG_DEFINITIONS
        return {
            "tags": [
                {"name": d["name"]} for i, d in enumerate(definitions) if i % 2 == 0
            ],
            "model_version": 1,
        }
    if analysis_type == "captioning":
        return {
            "data": {"caption": "A grey cat sitting on a wooden table"},
            "model_version": 1,
        }
    if analysis_type == "google_tagging":
        return {
            "label_annotations": {
                "labels": [
                    {"label": "Cat", "score": 0.9712},
                    {"label": "Felidae", "score": 0.9023},
                    {"label": "Small to medium-sized cats", "score": 0.8761},
                    {"label": "Whiskers", "score": 0.8544},
                    {"label": "Table", "score": 0.6102},
                ]
            }
        }
    if analysis_type == "google_logo_detection":
        return {
            "logo_annotations": [
                {
                    "mid": "/m/045c7b",
                    "description": "google",
                    "score": 0.98,
                    "bounding_poly": {
                        "vertices": [
                            {"x": 12, "y": 42},
                            {"x": 180, "y": 42},
                            {"x": 180, "y": 101},
                            {"x": 12, "y": 101},
                        ]
                    },
                }
            ]
        }
    if analysis_type == "image_quality":
        return {
            "quality": "medium",
            "score": 0.45218,
            "confidence": 0.8,
            "model_version": 1,
        }
    if analysis_type == "watermark_detection":
        return {
            "detections": [
                {"name": "banner", "confidence": 0.99},
                {"name": "logo", "confidence": 0.42},
            ],
            "model_version": 1,
        }
    if analysis_type in _DETECTION_TAGS:
        return {
            "tags": copy.deepcopy(_DETECTION_TAGS[analysis_type]),
            "model_version": 1,
        }
    raise KeyError(f"unknown analysis type: {analysis_type!r}")


def sample_limits(analysis_type: str, *, remaining: int = 500) -> dict[str, Any]:
    """Return the ``limits`` object a response for ``analysis_type`` carries."""
    return {
        "items": [
            {
                "type": QUOTA_FEATURES.get(analysis_type, DEFAULT_QUOTA_FEATURE),
                "used_by_request": 1,
                "remaining": remaining,
                "limit": 10000,
                "reset_time": RESET_TIME,
            }
        ]
    }


def sample_response(
    analysis_type: str, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Return a full 200 body: data (entity, analysis), limits and request_id."""
    return {
        "data": {
            "entity": ENTITY,
            "analysis": sample_analysis(analysis_type, params),
        },
        "limits": sample_limits(analysis_type),
        "request_id": _request_id("response", analysis_type, params),
    }


def sample_error(
    status: int,
    category: str = "user_error",
    code: str = "MA_00001",
    message: str = "missing parameters",
    *,
    details: Any = None,
    limits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return an error body; a 429 also carries an exhausted ``limits`` object."""
    body: dict[str, Any] = {
        "error": {
            "category": category,
            "code": code,
            "message": message,
            "details": details if details is not None else {},
            "request_id": _request_id("error", status, category, code, message),
        }
    }
    if limits is not None:
        body["limits"] = limits
    elif status == 429:
        body["limits"] = {
            "items": [
                {
                    "type": "ai_vision",
                    "used_by_request": 0,
                    "remaining": 0,
                    "limit": 10000,
                    "reset_time": RESET_TIME,
                }
            ]
        }
    return body


def sample_accepted(task_id: str, status: str = "pending") -> dict[str, Any]:
    """Return a 202 body for an async analysis (also the task-status shape)."""
    return {
        "data": {"task_id": task_id, "status": status},
        "request_id": _request_id("accepted", task_id, status),
    }


def sample_task_id(seed: str = "task") -> str:
    """Return a long (160 hex chars) task id like the spec's example."""
    return "".join(
        hashlib.sha256(f"{seed}:{i}".encode()).hexdigest() for i in range(3)
    )[:160]


def sample_webhook(
    analysis_type: str, task_id: str, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Return an ``analyze`` notification body delivering an async result."""
    response = sample_response(analysis_type, params)
    return {
        "notification_type": "analyze",
        "operation_type": "single",
        "task_id": task_id,
        "request_id": response["request_id"],
        "http_status": 200,
        "data": response["data"],
        "limits": response["limits"],
        "error": None,
    }
