"""
Model cards: the JSON that travels beside every exported ONNX graph.

The card says what the graph computes (method, graph kind, tensor names,
layouts, dtypes, value ranges), where it came from (training command, data,
metrics) and pins the exact file by sha256, so a node never runs a model whose
description does not match it.
"""

from dataclasses import asdict, dataclass, field
import hashlib
import json
from pathlib import Path
from typing import Any, Optional

CARD_FORMAT = 'fusion_ros.model_card/1'
GRAPH_KINDS = ('uint8', 'float', 'segment')   # 'segment': a standalone segmenter (task-driven evaluation)


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output."""

    name: str
    layout: str            # e.g. 'HW', 'HWC', 'NCHW'
    dtype: str             # 'uint8' | 'float32'
    range: tuple[float, float]
    description: str = ''


@dataclass(frozen=True)
class ModelCard:
    """Description of one exported graph; see module docstring."""

    method: str
    version: str
    graph: str
    onnx: str
    sha256: str
    opset: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    mask: Optional[dict[str, Any]] = None       # output name + class names, when the graph has one
    provenance: dict[str, Any] = field(default_factory=dict)  # training command, data, metrics, parity
    format: str = CARD_FORMAT
    # Files the graph reads its weights from (ONNX external data), name beside the graph -> sha256: a
    # float twin reads them from its uint8 graph, so each set of weights ships once.
    external_data: Optional[dict[str, str]] = None

    def input(self, layout_role: str) -> TensorSpec:
        """Return the input whose name is layout_role ('ir', 'visible_bgr', ...)."""
        for spec in self.inputs:
            if spec.name == layout_role:
                return spec
        raise KeyError(f'model card for {self.onnx} has no input named {layout_role!r}')


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (engines and graphs can be large)."""
    digest = hashlib.sha256()
    with Path(path).open('rb') as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def card_path_for(model_path: Path) -> Path:
    """Return where the card of a model lives: same stem, .json."""
    return Path(model_path).with_suffix('.json')


def card_from_dict(raw: dict[str, Any]) -> ModelCard:
    """Build a card from parsed JSON, naming any missing or malformed field."""
    if raw.get('format') != CARD_FORMAT:
        raise ValueError(f'unsupported model card format {raw.get("format")!r}; expected {CARD_FORMAT!r}')
    try:
        tensors = {key: tuple(TensorSpec(**{**t, 'range': tuple(t['range'])}) for t in raw[key])
                   for key in ('inputs', 'outputs')}
        card = ModelCard(**{**raw, **tensors})
    except (KeyError, TypeError) as err:
        raise ValueError(f'malformed model card: {err}') from None
    if card.graph not in GRAPH_KINDS:
        raise ValueError(f'model card graph kind {card.graph!r} is not one of {GRAPH_KINDS}')
    return card


def load_card(model_path: Path, verify: bool = True) -> ModelCard:
    """Load the card beside model_path and check the model file's sha256 against it."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f'model file not found: {model_path}')
    path = card_path_for(model_path)
    if not path.is_file():
        raise FileNotFoundError(f'model card not found: {path} (every model ships with a JSON card beside it)')
    try:
        card = card_from_dict(json.loads(path.read_text()))
    except json.JSONDecodeError as err:
        raise ValueError(f'model card {path} is not valid JSON: {err}') from None
    if verify:
        actual = sha256_of(model_path)
        if actual != card.sha256:
            raise ValueError(f'{model_path} does not match its card {path.name}: '
                             f'sha256 {actual[:12]}... != {card.sha256[:12]}... (re-export or fix the card)')
        verify_external_data(model_path, card)
    return card


def verify_external_data(model_path: Path, card: ModelCard) -> None:
    """Check the files the graph takes its weights from: present beside it and the bytes the card pins."""
    for name, pinned in (card.external_data or {}).items():
        source = Path(model_path).parent / name
        if not source.is_file():
            raise FileNotFoundError(f'{Path(model_path).name} reads its weights from {name}, which is not beside it '
                                    f'in {source.parent} (copy both files, or re-export with training.deploy.export)')
        if sha256_of(source) != pinned:
            raise ValueError(f'{name}, the weights of {Path(model_path).name}, does not match the sha256 its card '
                             'pins (re-export both graphs with training.deploy.export)')


def save_card(card: ModelCard, path: Path) -> None:
    """Write a card as indented JSON."""
    Path(path).write_text(json.dumps(asdict(card), indent=2) + '\n')
