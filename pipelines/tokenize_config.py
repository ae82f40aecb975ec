"""Configuration of the tokenize stage and of offline tokenizer training."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrainTokenizerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(default=8192, ge=256)
    min_frequency: int = Field(default=2, ge=1)
    max_docs: int | None = Field(default=None, description="train on at most this many clean docs")


class TokenizeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokenizer: str = Field(default="lake/tokenizer.json", description="tokenizer.json (HF) or tiktoken ranks file")
    bos: bool = False
    eos: bool = False
    batch_size: int = Field(default=1024, gt=0, description="documents per encode_batch call")
    train: TrainTokenizerConfig = Field(default_factory=TrainTokenizerConfig)
