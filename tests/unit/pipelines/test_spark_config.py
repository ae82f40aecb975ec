"""`spark.driver_memory`: the driver size of the CLI's own session, a validated config default."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipelines.config import Config


def test_driver_memory_is_a_jvm_size_defaulting_to_4g() -> None:
    assert Config().spark.driver_memory == "4g"
    assert Config.model_validate({"spark": {"driver_memory": "2048m"}}).spark.driver_memory == "2048m"
    for bad in ("lots", "0g", "4 g", "-1g"):
        with pytest.raises(ValidationError, match="driver_memory"):
            Config.model_validate({"spark": {"driver_memory": bad}})
