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
    explain: bool = Field(
        False,
        description="add per-word attributions of each prediction (occlusion: how far each word's deletion moves it)",
    )

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


class WordScore(BaseModel):
    word: str
    score: float = Field(description="the word's share of the output's distance from the all-padding baseline")


class Explanation(BaseModel):
    label: str = Field(description="what is explained: the predicted class, each chosen label, or the value's name")
    output: float = Field(description="its probability (or the value) for the text")
    baseline: float = Field(description="the same for the text with every word replaced by padding")
    delta: float = Field(description="how far the scores' sum is from output - baseline")
    method: str
    words: list[WordScore]
    pair_words: list[WordScore] | None = None


class Prediction(BaseModel):
    label: str | None = None
    probability: float | None = None
    probabilities: dict[str, float] | None = None
    labels: list[str] | None = Field(None, description="multi-label models: the labels chosen")
    value: float | None = Field(None, description="regression models: the predicted value")
    explanations: list[Explanation] | None = Field(None, description="with `explain`: why, per explained label")


class PredictResponse(BaseModel):
    predictions: list[Prediction]


class TeiRequest(BaseModel):
    """Text Embeddings Inference's ``/predict`` body (and the Inference API's, which
    ``huggingface_hub.InferenceClient`` sends to ``POST /``): one text or a list of them."""

    model_config = ConfigDict(extra="forbid")

    inputs: str | list[str] = Field(description="one text, or several answered in order")
    raw_scores: bool = Field(False, description="logits instead of calibrated probabilities")
    truncate: bool | None = Field(None, description="accepted for compatibility: texts are always fitted to the model")
    truncation_direction: str | None = Field(None, description="accepted for compatibility")
    parameters: dict | None = Field(None, description="the Inference API's options (top_k is honoured)")

    def texts(self) -> list[str]:
        return [self.inputs] if isinstance(self.inputs, str) else list(self.inputs)


class InferTensor(BaseModel):
    """One tensor of the Open Inference Protocol (KServe v2)."""

    name: str
    shape: list[int]
    datatype: str
    data: list
    parameters: dict | None = None


class InferRequest(BaseModel):
    """``POST /v2/models/{name}/infer``: a BYTES tensor named ``text`` (and ``text_pair`` for pair models)."""

    id: str | None = None
    inputs: list[InferTensor]
    outputs: list[dict] | None = None
    parameters: dict | None = None
