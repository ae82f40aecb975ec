"""Configuration of the tokenize stage and of offline tokenizer training."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The split pattern of cl100k_base: what a tiktoken ranks file is usually paired with.
CL100K_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# The split pattern of GPT-2 (and of HF's ByteLevel pre-tokenizer): pairs with ranks exported from our BPE.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


class TrainTokenizerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(default=8192, ge=256)
    min_frequency: int = Field(default=2, ge=1)
    max_docs: int | None = Field(
        default=100_000, ge=1, description="train on a sample of at most this many clean docs (the driver holds "
        "the sample, so its memory does not grow with the corpus); null: every doc")
    seed: int = Field(default=0, description="which docs are taken when max_docs caps the sample")
    retrain: bool = Field(
        default=False, description="train even when the tokenizer file was trained with these settings "
        "(`tokenmill train-tokenizer --retrain`); otherwise that tokenizer is kept, so new data does not retrain it")


class TokenizeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokenizer: str = Field(default="lake/tokenizer.json", description="tokenizer.json (HF) or tiktoken ranks file")
    format: Literal["auto", "hf", "tiktoken"] = Field(
        default="auto", description="auto: a file whose content is a JSON object is HF, anything else tiktoken"
    )
    eod_token: str = Field(default="<|endoftext|>", description="end-of-document token, written by eos")
    bos_token: str | None = Field(default=None, description="token written by bos; default: eod_token")
    bos: bool = False
    eos: bool = False
    batch_size: int = Field(default=1024, gt=0, description="documents per encode_batch call")
    file_target_bytes: int = Field(
        default=128 * 1024 * 1024, gt=0, description="token bytes a task holds before it writes them as one Parquet "
        "data file of the tokens table (bounds a task's memory; the tokens are the same for any value)")
    tiktoken_pattern: str = Field(default=CL100K_PATTERN, description="pre-split regex for a tiktoken ranks file")
    tiktoken_eod_id: int | None = Field(
        default=None, ge=0, description="id of eod_token for a tiktoken file; default: one past the last rank"
    )
    train: TrainTokenizerConfig = Field(default_factory=TrainTokenizerConfig)
