"""Shared fixtures: one exported model per session."""

from pathlib import Path

import pytest

from tests.model_fixtures import export_seeded_model


@pytest.fixture(scope='session')
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """(uint8 graph, float graph) of a seeded SeAFusion, exported and parity-checked."""
    return export_seeded_model(tmp_path_factory.mktemp('model'))


@pytest.fixture(scope='session')
def exported_sgfusion(tmp_path_factory) -> tuple[Path, Path]:
    """(uint8 graph, float graph) of a seeded SGFusion: fused image + saliency."""
    return export_seeded_model(tmp_path_factory.mktemp('sgfusion'), method='sgfusion')


@pytest.fixture(scope='session')
def exported_seg(tmp_path_factory) -> tuple[Path, Path]:
    """(uint8 graph, float graph) of a seeded SeAFusion with a seeded segmenter: fused image + class map."""
    return export_seeded_model(tmp_path_factory.mktemp('seafusion_seg'), segmenter=True)
