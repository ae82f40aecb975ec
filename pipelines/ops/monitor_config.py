"""Thresholds of the data-quality checks between versions (config key `monitor`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MonitorConfig(BaseModel):
    """Thresholds of the checks between versions (config key `monitor`); fractions are in [0, 1]."""

    model_config = ConfigDict(extra="forbid")

    max_volume_drop: float = Field(default=0.2, ge=0, le=1,
                                   description="largest relative drop of kept documents, and of tokens")
    max_signal_drift: float = Field(default=0.2, ge=0, le=1,
                                    description="largest KS distance of a numeric quality signal of kept docs")
    max_language_shift: float = Field(default=0.1, ge=0, le=1,
                                      description="largest total-variation distance of the language mix")
    allow_schema_change: bool = Field(default=False, description="a changed table schema passes when true")
    min_docs: int = Field(default=100, ge=1, description="drift checks need this many kept docs on both sides")
    signals: list[str] | None = Field(default=None, description="signals to check; default: every numeric one")
    prometheus_file: str | None = Field(default=None,
                                        description="also write stage metrics here (Prometheus text format)")
