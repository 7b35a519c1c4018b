"""The LUKE task models: a LukeModel (``self.luke``) plus one head each, with their losses."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .config import LukeConfig
from .mode import Dropout
from .encoder import activation
from .luke import LukeModel, LukePreTrainedModel, _reject_unknown
from .span_pruner import SpanPruner, prefix_word_states, pruner_config_of
from .outputs import LukeClassifierOutput, LukeMaskedLMOutput, LukeQuestionAnsweringOutput

ENCODER_KEYS = (
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "position_ids",
    "entity_ids",
    "entity_attention_mask",
    "entity_token_type_ids",
    "entity_position_ids",
    "inputs_embeds",
    "output_hidden_states",
    "output_attentions",
)


def _split_kwargs(kwargs: dict):
    encoder_inputs = {k: kwargs.pop(k) for k in list(kwargs) if k in ENCODER_KEYS}
    return_dict = kwargs.pop("return_dict", True)
    _reject_unknown(kwargs)
    return encoder_inputs, return_dict


def _finish(output, return_dict: bool):
    return output if return_dict is None or return_dict else output.to_tuple()


def _label_loss(logits: torch.Tensor, labels: torch.Tensor, single_label_ndim: int) -> torch.Tensor:
    """Cross entropy when ``labels`` has ``single_label_ndim`` dims (class ids), else BCE on 0/1 targets."""
    labels = labels.to(logits.device)
    if labels.dim() == single_label_ndim:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
    return F.binary_cross_entropy_with_logits(logits.reshape(-1), labels.reshape(-1).to(logits.dtype))


class _TaskModel(LukePreTrainedModel):
    add_pooling_layer = True

    def __init__(self, config: LukeConfig):
        super().__init__(config)
        self.luke = LukeModel(config, add_pooling_layer=self.add_pooling_layer)

    def _classifier_dropout(self) -> Dropout:
        p = self.config.classifier_dropout
        return Dropout(self.config.hidden_dropout_prob if p is None else p)


class LMHead(nn.Module):
    """RoBERTa's MLM head; the output projection is the (tied) word embedding matrix."""

    def __init__(self, config: LukeConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder = None if config.tie_word_embeddings else nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(self, hidden: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(F.gelu(self.dense(hidden)))
        weight = word_embeddings if self.decoder is None else self.decoder.weight
        return F.linear(x, weight, self.bias)


class EntityPredictionHeadTransform(nn.Module):
    def __init__(self, config: LukeConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.entity_emb_size)
        self.act = activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.entity_emb_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.act(self.dense(hidden)))


class EntityPredictionHead(nn.Module):
    """Masked entity prediction; the output projection is the (tied) entity embedding matrix."""

    def __init__(self, config: LukeConfig):
        super().__init__()
        self.transform = EntityPredictionHeadTransform(config)
        self.bias = nn.Parameter(torch.zeros(config.entity_vocab_size))

    def forward(self, hidden: torch.Tensor, entity_embeddings: torch.Tensor) -> torch.Tensor:
        return F.linear(self.transform(hidden), entity_embeddings, self.bias)


class LukeForMaskedLM(_TaskModel):
    """Masked language modeling and masked entity prediction (LUKE's pretraining heads)."""

    def __init__(self, config: LukeConfig):
        super().__init__(config)
        self.lm_head = LMHead(config)
        self.entity_predictions = EntityPredictionHead(config)

    def forward(self, labels=None, entity_labels=None, **kwargs) -> LukeMaskedLMOutput:
        inputs, return_dict = _split_kwargs(kwargs)
        out = self.luke(**inputs)
        logits = self.lm_head(out.last_hidden_state, self.luke.embeddings.word_embeddings.weight)
        mlm_loss = mep_loss = entity_logits = None
        if labels is not None:
            mlm_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.to(logits.device).reshape(-1))
        if out.entity_last_hidden_state is not None:
            entity_logits = self.entity_predictions(
                out.entity_last_hidden_state, self.luke.entity_embeddings.entity_embeddings.weight
            )
            if entity_labels is not None:
                mep_loss = F.cross_entropy(
                    entity_logits.reshape(-1, entity_logits.shape[-1]), entity_labels.to(logits.device).reshape(-1)
                )
        losses = [loss for loss in (mlm_loss, mep_loss) if loss is not None]
        return _finish(
            LukeMaskedLMOutput(
                loss=sum(losses) if losses else None,
                mlm_loss=mlm_loss,
                mep_loss=mep_loss,
                logits=logits,
                entity_logits=entity_logits,
                hidden_states=out.hidden_states,
                entity_hidden_states=out.entity_hidden_states,
                attentions=out.attentions,
            ),
            return_dict,
        )


class LukeForEntityClassification(_TaskModel):
    """Classify the first entity (the [MASK] entity over an <ent>-marked span): Open Entity."""

    def __init__(self, config: LukeConfig):
        super().__init__(config)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, labels=None, **kwargs) -> LukeClassifierOutput:
        inputs, return_dict = _split_kwargs(kwargs)
        out = self.luke(**inputs)
        _need_entities(out, 1, type(self).__name__)
        logits = self.classifier(self.dropout(out.entity_last_hidden_state[:, 0]))
        loss = None if labels is None else _label_loss(logits, labels, 1)
        return _finish(_classifier_output(loss, logits, out), return_dict)


class LukeForEntityPairClassification(_TaskModel):
    """Classify the relation between the first two entities (head, tail): TACRED."""

    def __init__(self, config: LukeConfig):
        super().__init__(config)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size * 2, config.num_labels, bias=bool(config.classifier_bias))

    def forward(self, labels=None, **kwargs) -> LukeClassifierOutput:
        inputs, return_dict = _split_kwargs(kwargs)
        out = self.luke(**inputs)
        _need_entities(out, 2, type(self).__name__)
        entities = out.entity_last_hidden_state
        features = torch.cat([entities[:, 0], entities[:, 1]], dim=1)
        logits = self.classifier(self.dropout(features))
        loss = None if labels is None else _label_loss(logits, labels, 1)
        return _finish(_classifier_output(loss, logits, out), return_dict)


class LukeForEntitySpanClassification(_TaskModel):
    """Classify every entity span from [start word, end word, entity] states: CoNLL-2003 NER."""

    def __init__(self, config: LukeConfig):
        super().__init__(config)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size * 3, config.num_labels)
        settings = pruner_config_of(config)
        self.span_pruner = None if settings is None else SpanPruner(config.hidden_size, settings)

    def span_pruner_logits(self, input_ids, attention_mask, entity_start_positions, entity_end_positions, **unused):
        """``(batch, entities)`` pruner logits of the candidate spans (the entity inputs are not read).

        The word states are computed without gradient: a loss on these logits trains the pruner
        alone, never the encoder.
        """
        if self.span_pruner is None:
            raise ValueError("This model has no span pruner (span_pruner.add_span_pruner, then train it).")
        with torch.no_grad():
            words = prefix_word_states(self.luke, input_ids, attention_mask, self.span_pruner.settings.layers)
        return self.span_pruner(words, entity_start_positions, entity_end_positions)

    def forward(self, entity_start_positions=None, entity_end_positions=None, labels=None, **kwargs):
        inputs, return_dict = _split_kwargs(kwargs)
        if entity_start_positions is None or entity_end_positions is None:
            raise ValueError(
                "LukeForEntitySpanClassification needs entity_start_positions and entity_end_positions "
                "(the tokenizer returns them with task='entity_span_classification')."
            )
        out = self.luke(**inputs)
        _need_entities(out, 0, type(self).__name__)
        words = out.last_hidden_state
        length = words.shape[1]
        for name, positions in (("entity_start_positions", entity_start_positions), ("entity_end_positions", entity_end_positions)):
            if positions.shape != inputs["entity_ids"].shape:
                raise ValueError(f"{name} has shape {tuple(positions.shape)}, expected {tuple(inputs['entity_ids'].shape)}.")
            if positions.numel() and (int(positions.max()) >= length or int(positions.min()) < 0):
                raise ValueError(f"{name} must index word pieces in [0, {length}); got {int(positions.max())}.")
        features = torch.cat(
            [_gather_rows(words, entity_start_positions), _gather_rows(words, entity_end_positions), out.entity_last_hidden_state],
            dim=2,
        )
        logits = self.classifier(self.dropout(features))
        loss = None if labels is None else _label_loss(logits, labels, 2)
        return _finish(_classifier_output(loss, logits, out), return_dict)


class LukeForSequenceClassification(_TaskModel):
    """Classify the whole input from the pooled first token."""

    def __init__(self, config: LukeConfig):
        super().__init__(config)
        self.dropout = self._classifier_dropout()
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, labels=None, **kwargs) -> LukeClassifierOutput:
        inputs, return_dict = _split_kwargs(kwargs)
        out = self.luke(**inputs)
        logits = self.classifier(self.dropout(out.pooler_output))
        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            problem = self.config.problem_type
            if problem is None:
                if self.config.num_labels == 1:
                    problem = "regression"
                elif labels.dtype in (torch.long, torch.int):
                    problem = "single_label_classification"
                else:
                    problem = "multi_label_classification"
            if problem == "regression":
                if self.config.num_labels == 1:
                    loss = F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
                else:
                    loss = F.mse_loss(logits, labels.to(logits.dtype))
            elif problem == "single_label_classification":
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
            else:
                loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        return _finish(_classifier_output(loss, logits, out), return_dict)


class LukeForTokenClassification(_TaskModel):
    """Classify every word piece."""

    add_pooling_layer = False

    def __init__(self, config: LukeConfig):
        super().__init__(config)
        self.dropout = self._classifier_dropout()
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, labels=None, **kwargs) -> LukeClassifierOutput:
        inputs, return_dict = _split_kwargs(kwargs)
        out = self.luke(**inputs)
        logits = self.classifier(self.dropout(out.last_hidden_state))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.to(logits.device).reshape(-1))
        return _finish(_classifier_output(loss, logits, out), return_dict)


class LukeForQuestionAnswering(_TaskModel):
    """Extractive QA: start and end logits over word pieces."""

    add_pooling_layer = False

    def __init__(self, config: LukeConfig):
        super().__init__(config)
        if config.num_labels != 2:
            raise ValueError(
                f"LukeForQuestionAnswering predicts start and end logits: it needs num_labels == 2, "
                f"but the config has {config.num_labels} labels ({list(config.id2label.values())})."
            )
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, start_positions=None, end_positions=None, **kwargs) -> LukeQuestionAnsweringOutput:
        inputs, return_dict = _split_kwargs(kwargs)
        out = self.luke(**inputs)
        start_logits, end_logits = self.qa_outputs(out.last_hidden_state).split(1, dim=-1)
        start_logits, end_logits = start_logits.squeeze(-1), end_logits.squeeze(-1)
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.shape[1]  # positions outside the input are clamped here and ignored
            start = start_positions.reshape(-1).to(start_logits.device).clamp(0, ignored)
            end = end_positions.reshape(-1).to(end_logits.device).clamp(0, ignored)
            loss = (
                F.cross_entropy(start_logits, start, ignore_index=ignored)
                + F.cross_entropy(end_logits, end, ignore_index=ignored)
            ) / 2
        return _finish(
            LukeQuestionAnsweringOutput(
                loss=loss,
                start_logits=start_logits,
                end_logits=end_logits,
                hidden_states=out.hidden_states,
                entity_hidden_states=out.entity_hidden_states,
                attentions=out.attentions,
            ),
            return_dict,
        )


class LukeForMultipleChoice(_TaskModel):
    """Score each of ``num_choices`` inputs (batch, choices, ...) from its pooled first token."""

    def __init__(self, config: LukeConfig):
        super().__init__(config)
        self.dropout = self._classifier_dropout()
        self.classifier = nn.Linear(config.hidden_size, 1)

    def forward(self, labels=None, **kwargs) -> LukeClassifierOutput:
        inputs, return_dict = _split_kwargs(kwargs)
        ref = inputs.get("input_ids")
        if ref is None:
            ref = inputs["inputs_embeds"][..., 0]
        if ref.dim() != 3:
            raise ValueError(f"LukeForMultipleChoice expects (batch, num_choices, length) inputs; got {tuple(ref.shape)}.")
        num_choices = ref.shape[1]
        flat = {}
        for key, value in inputs.items():
            if not isinstance(value, torch.Tensor):
                flat[key] = value
            elif key == "entity_position_ids":
                flat[key] = value.reshape(-1, value.shape[-2], value.shape[-1])
            elif key == "inputs_embeds":
                flat[key] = value.reshape(-1, value.shape[-2], value.shape[-1])
            else:
                flat[key] = value.reshape(-1, value.shape[-1])
        out = self.luke(**flat)
        logits = self.classifier(self.dropout(out.pooler_output)).reshape(-1, num_choices)
        loss = None if labels is None else F.cross_entropy(logits, labels.to(logits.device))
        return _finish(_classifier_output(loss, logits, out), return_dict)


def _gather_rows(hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``hidden[b, positions[b, i]]`` for every b, i."""
    index = positions.to(hidden.device).unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
    return torch.gather(hidden, 1, index)


def _need_entities(out, count: int, name: str) -> None:
    entities = out.entity_last_hidden_state
    if entities is None or entities.shape[1] < count:
        if entities is None and count == 0:
            raise ValueError(f"{name} needs entity inputs (entity_ids, entity_position_ids); none were given.")
        have = 0 if entities is None else entities.shape[1]
        raise ValueError(
            f"{name} needs at least {count} entit{'y' if count == 1 else 'ies'} per input, got {have}. "
            "Build the inputs with the matching tokenizer task (entity_classification / entity_pair_classification)."
        )


def _classifier_output(loss, logits, out) -> LukeClassifierOutput:
    return LukeClassifierOutput(
        loss=loss,
        logits=logits,
        hidden_states=out.hidden_states,
        entity_hidden_states=out.entity_hidden_states,
        attentions=out.attentions,
    )


HEAD_CLASSES = (
    LukeForMaskedLM,
    LukeForEntityClassification,
    LukeForEntityPairClassification,
    LukeForEntitySpanClassification,
    LukeForSequenceClassification,
    LukeForTokenClassification,
    LukeForQuestionAnswering,
    LukeForMultipleChoice,
)
