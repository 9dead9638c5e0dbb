"""Shared fixtures: one exported model per session."""

from pathlib import Path

import pytest

from tests.model_fixtures import export_seeded_model


@pytest.fixture(scope='session')
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """(uint8 graph, float graph) of a seeded SeAFusion, exported and parity-checked."""
    return export_seeded_model(tmp_path_factory.mktemp('model'))
