"""The contract every inference backend fulfils."""

from abc import ABC, abstractmethod

import numpy as np

from fusion_ros.core.model_card import ModelCard


class BackendError(RuntimeError):
    """An inference call failed; the caller may skip the frame and carry on."""


class Backend(ABC):
    """
    Runs one exported graph: named numpy inputs in, named numpy outputs out.

    Input and output names, layouts and dtypes are those of the model card, so
    the pipeline never needs to know which runtime executes the graph.
    """

    name = 'backend'

    def __init__(self, card: ModelCard):
        self.card = card

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Execute the graph once; raise BackendError on failure."""

    def close(self) -> None:
        """Release runtime resources (sessions, device memory)."""

    def describe(self) -> str:
        """Return a one-line description for logs and diagnostics."""
        return f'{self.name}:{self.card.method}/{self.card.graph}'
