"""Request and response bodies of ``POST /predict`` (they also make the OpenAPI docs)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PredictRequest(BaseModel):
    """One text (``text``) or several (``texts``); pair models also take ``text_pair``/``text_pairs``."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, description="one text to classify")
    texts: list[str] | None = Field(None, description="several texts, answered in order")
    text_pair: str | None = Field(None, description="the second text of `text`, for pair models")
    text_pairs: list[str] | None = Field(None, description="the second texts of `texts`, for pair models")

    @model_validator(mode="after")
    def one_form(self) -> PredictRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of text or texts")
        if self.text is not None and self.text_pairs is not None:
            raise ValueError("text goes with text_pair, texts with text_pairs")
        if self.texts is not None and self.text_pair is not None:
            raise ValueError("texts goes with text_pairs, text with text_pair")
        return self

    def inputs(self) -> tuple[list[str], list[str] | None]:
        if self.text is not None:
            return [self.text], None if self.text_pair is None else [self.text_pair]
        return list(self.texts or []), self.text_pairs


class Prediction(BaseModel):
    label: str | None = None
    probability: float | None = None
    probabilities: dict[str, float] | None = None
    labels: list[str] | None = Field(None, description="multi-label models: the labels chosen")
    value: float | None = Field(None, description="regression models: the predicted value")


class PredictResponse(BaseModel):
    predictions: list[Prediction]
