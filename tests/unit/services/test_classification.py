"""The classification service's own setup errors (its request paths: tests/unit/api/test_routes_classification.py)."""

from __future__ import annotations

import pytest

from visionpack.config import ServiceConfig
from visionpack.errors import ConfigInvalid
from visionpack.services.classification import ClassificationService


def test_a_deploy_without_the_classifier_bundle_is_a_configuration_fault():
    # The operator's config, not a client's request: exit 19 / 'config-invalid', never 336001.
    with pytest.raises(ConfigInvalid, match="config.models lacks the 'classifier' bundle"):
        ClassificationService(ServiceConfig(models={"detector": "/nowhere"}), lambda bundle, cfg: None)
