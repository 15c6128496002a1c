"""Chat back-end for any transformers causal LM, token-in, token-out.

`HFChatModel.chat` renders each request (or takes its `prompt_ids` verbatim), sorts the
batch by prompt length, left-pads chunks of at most `max_batch_size` prompts and runs
`model.generate` on each. Every completion carries the generated ids (end-of-turn token
included when it was generated) and the log-probability of each under the distribution
it was sampled from: `log_softmax(logits / temperature)` (temperature 1 for greedy).
`top_p` truncation is not reflected in those log-probs.

With `kv_reuse` (the default, for models that support it) the keys/values of each prompt
are kept after the call, and a later prompt that extends a kept one (an episode's next
turn) or shares its beginning (the same system prompt and tools) only computes its new
tokens: see `agentwheel.llm.kv_generation`. Outputs are those of re-reading the whole
prompt, up to floating-point rounding. The cache is cleared whenever the weights change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
)

from agentwheel.core.messages import ChatRequest, Completion, FinishReason, SamplingParams
from agentwheel.llm.half_precision import runnable_dtype
from agentwheel.llm.kv_cache import PrefixKVCache, weights_fingerprint
from agentwheel.llm.kv_generation import (
    Decoding,
    PrefixReusingGenerator,
    supports_prefix_reuse,
    trim_at_stop,
)
from agentwheel.llm.template import (
    ChatTemplateRenderer,
    TemplateRenderError,
    standalone_tokenizer,
)
from agentwheel.llm.tool_calls import parse_tool_calls

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# About 1.5 GB of keys/values for SmolLM2-135M in bfloat16 (23 KB per token).
DEFAULT_KV_CACHE_TOKENS = 65536


class ModelLoadError(RuntimeError):
    """A model or tokenizer could not be loaded; the message says what to do."""


class SampledLogprobs(LogitsProcessor):
    """Records, step by step, the log-probability of each sampled token.

    `generate` runs custom processors before its temperature / top-k / top-p warpers, so
    the scores seen here are the raw logits. The token chosen at step t is only known at
    step t+1 (the last column of `input_ids`), so one step's distribution is kept pending.
    """

    def __init__(self, temperature: float):
        self.temperature = temperature
        self.steps: list[torch.Tensor] = []
        self._pending: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._gather(input_ids[:, -1])
        self._pending = torch.log_softmax(scores.float() / self.temperature, dim=-1)
        return scores

    def _gather(self, tokens: torch.Tensor) -> None:
        if self._pending is not None:
            self.steps.append(self._pending.gather(1, tokens.unsqueeze(1)).squeeze(1))
            self._pending = None

    def finish(self, last_tokens: torch.Tensor) -> torch.Tensor:
        """(batch, steps) log-probs, given the tokens chosen at the last step."""
        self._gather(last_tokens)
        return torch.stack(self.steps, dim=1).cpu()


def completion_from_ids(
    renderer: ChatTemplateRenderer,
    request: ChatRequest,
    prompt_tokens: int,
    completion_ids: list[int],
    logprobs: list[float] | None,
    finish_reason: FinishReason,
) -> Completion:
    """The completion for ids a model generated: decoded text (special tokens stripped)
    and the tool calls parsed from it against the request's tools."""
    text = renderer.decode(completion_ids, skip_special_tokens=True)
    _, calls, errors = parse_tool_calls(text, request.tools)
    return Completion(
        text=text,
        tool_calls=calls,
        tool_call_errors=errors,
        completion_ids=completion_ids,
        logprobs=logprobs,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=len(completion_ids),
    )


def _error(message: str, prompt_tokens: int = 0) -> Completion:
    return Completion(finish_reason="error", error=message, prompt_tokens=prompt_tokens)


def prepare_prompts(
    renderer: ChatTemplateRenderer,
    requests: Sequence[ChatRequest],
    max_context: int,
    model_name: str,
) -> tuple[list[Completion | None], list[tuple[int, list[int]]]]:
    """The prompt ids of each request a token back-end can continue, and an error
    completion for each it cannot.

    A request's ids are its `prompt_ids` verbatim when given, else the renderer's opening
    prompt. Returns `(results, prompts)`: `results[i]` is the error completion of request
    `i` (a template that cannot render it, an empty prompt, or one that leaves no room for a
    new token within `max_context`) or None; `prompts` holds `(i, ids)` for the others.
    """
    results: list[Completion | None] = [None] * len(requests)
    prompts: list[tuple[int, list[int]]] = []
    for index, request in enumerate(requests):
        try:
            ids = (
                list(request.prompt_ids)
                if request.prompt_ids is not None
                else renderer.initial_ids(request.messages, request.tools)
            )
        except (jinja2.TemplateError, TemplateRenderError) as exc:
            results[index] = _error(f"the chat template cannot render this request: {exc}")
            continue
        if not ids:
            results[index] = _error("empty prompt")
        elif len(ids) >= max_context:
            results[index] = _error(
                f"prompt has {len(ids)} tokens; {model_name} has a context of "
                f"{max_context} (room for at least one new token is needed)",
                prompt_tokens=len(ids),
            )
        else:
            prompts.append((index, ids))
    return results, prompts


def stop_token_ids(end_of_turn_id: int, *eos_sources: Any) -> list[int]:
    """The ids generation stops on: the template's end-of-turn token and every eos id in
    `eos_sources` (each an id, a list of ids, or None, as tokenizers and generation
    configs give them)."""
    ids = {end_of_turn_id}
    for source in eos_sources:
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, list | tuple):
            ids.update(int(i) for i in source)
    return sorted(ids)


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed sampling without disturbing the caller's global RNG state."""
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        torch.manual_seed(seed)
        yield


class HFChatModel:
    """A transformers causal LM behind the `ChatModel` protocol.

    `template` overrides the chat template the renderer picks (see
    `agentwheel.llm.template.choose_template`). `max_context` defaults to the model's
    `max_position_embeddings`; a prompt that does not fit comes back as an error
    completion, and a chunk's new tokens are capped so that its longest prompt fits.

    `kv_reuse` keeps prompts' keys/values between calls (at most `kv_cache_tokens`
    tokens, least recently used evicted first); it is ignored for models whose attention
    cannot continue from a spliced cache (sliding windows, linear attention, flash
    attention). `kv_reuse=False` re-reads every prompt through `model.generate`.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        name: str,
        template: str | None = None,
        max_batch_size: int = 8,
        max_context: int | None = None,
        template_kwargs: Mapping[str, Any] | None = None,
        kv_reuse: bool = True,
        kv_cache_tokens: int = DEFAULT_KV_CACHE_TOKENS,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.max_batch_size = max_batch_size
        self._renderer = ChatTemplateRenderer(tokenizer, template, template_kwargs)
        self.max_context = max_context or int(
            getattr(model.config, "max_position_embeddings", 0) or 1 << 30
        )
        self.stop_ids = stop_token_ids(
            self._renderer.end_of_turn_id,
            tokenizer.eos_token_id,
            model.generation_config.eos_token_id,
        )
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else self._renderer.end_of_turn_id
        self.kv_cache = PrefixKVCache(kv_cache_tokens)
        self.prefix_reuse = (
            PrefixReusingGenerator(model, self.kv_cache)
            if kv_reuse and supports_prefix_reuse(model)
            else None
        )
        self._cached_weights: torch.Tensor | None = None
        self._standalone_tokenizer: Any = None

    @property
    def kv_reuse(self) -> bool:
        """Whether prompts' keys/values are kept and reused between calls."""
        return self.prefix_reuse is not None

    def release_kv_cache(self) -> None:
        """Drop every kept key/value state (they are rebuilt as prompts come in)."""
        self.kv_cache.clear()

    @property
    def renderer(self) -> ChatTemplateRenderer:
        return self._renderer

    def standalone_tokenizer(self) -> Any:
        """The tokenizer to save with this model's weights: its chat template is the one
        this model renders with (template keywords baked in as defaults), so plain
        `apply_chat_template(messages, tools=...)` on the saved directory gives the ids
        this model was prompted and trained with."""
        if self._standalone_tokenizer is None:
            self._standalone_tokenizer = standalone_tokenizer(
                self.tokenizer, self._renderer.standalone_template()
            )
        return self._standalone_tokenizer

    @property
    def device(self) -> torch.device:
        return torch.device(self.model.device)

    def chat(self, requests: Sequence[ChatRequest], params: SamplingParams) -> list[Completion]:
        """One completion per request, in request order. `params.seed` seeds the whole call
        (sampled ids then depend on how the batch was chunked, not only on the request)."""
        results, prompts = prepare_prompts(self._renderer, requests, self.max_context, self.name)
        if self.prefix_reuse is not None:
            self._drop_stale_kv_cache()
        # Similar lengths share a chunk, so little compute goes to padding.
        prompts.sort(key=lambda item: len(item[1]))
        with _seeded(params.seed, self.device):
            for start in range(0, len(prompts), self.max_batch_size):
                chunk = prompts[start : start + self.max_batch_size]
                generated = self._generate([ids for _, ids in chunk], params)
                for (index, ids), (completion_ids, logprobs, finish) in zip(
                    chunk, generated, strict=True
                ):
                    results[index] = completion_from_ids(
                        self._renderer, requests[index], len(ids), completion_ids, logprobs, finish
                    )
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    def _drop_stale_kv_cache(self) -> None:
        """Cached states belong to the weights they were computed with; a training step or
        a weight copy since the last call makes them wrong."""
        fingerprint = weights_fingerprint(self.model)
        if self._cached_weights is None or not torch.equal(fingerprint, self._cached_weights):
            self.kv_cache.clear()
        self._cached_weights = fingerprint

    @torch.inference_mode()
    def _generate(
        self, prompts: Sequence[list[int]], params: SamplingParams
    ) -> list[tuple[list[int], list[float], FinishReason]]:
        width = max(len(p) for p in prompts)
        max_new_tokens = max(1, min(params.max_new_tokens, self.max_context - width))
        if self.prefix_reuse is not None:
            decoding = Decoding(
                max_new_tokens=max_new_tokens,
                stop_ids=self.stop_ids,
                pad_id=self.pad_id,
                temperature=params.temperature,
                top_p=params.top_p,
            )
            return self.prefix_reuse.generate(prompts, decoding)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
        greedy = params.temperature <= 0
        recorder = SampledLogprobs(temperature=1.0 if greedy else params.temperature)
        # Every knob is explicit: unset fields would be filled from the checkpoint's
        # generation_config (Qwen3: top_k=20, top_p=0.95) or transformers' defaults (top_k=50).
        sampling = (
            {"do_sample": False, "temperature": 1.0, "top_p": 1.0, "top_k": 50}
            if greedy
            else {
                "do_sample": True,
                "temperature": params.temperature,
                "top_p": params.top_p,
                "top_k": 0,
                "min_p": 0.0,
            }
        )
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            min_new_tokens=0,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            eos_token_id=self.stop_ids,
            pad_token_id=self.pad_id,
            return_dict_in_generate=True,
            **sampling,
        )
        out = self.model.generate(
            input_ids=input_ids.to(self.device),
            attention_mask=attention_mask.to(self.device),
            generation_config=config,
            logits_processor=LogitsProcessorList([recorder]),
        )
        new_tokens = out.sequences[:, width:].cpu()
        logprobs = recorder.finish(out.sequences[:, -1])
        return trim_at_stop(new_tokens, logprobs, self.stop_ids)


def _resolve_device(device: str) -> str:
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device='cuda' was asked for but torch sees no CUDA device")
    return device


def load_hf_model(
    path_or_name: str | Path,
    dtype: str = "float32",
    device: str = "cpu",
    name: str | None = None,
    template: str | None = None,
    max_batch_size: int = 8,
    kv_reuse: bool = True,
    template_kwargs: Mapping[str, Any] | None = None,
) -> HFChatModel:
    """Load a causal LM and its tokenizer from a local directory or a hub name;
    `template_kwargs` go to its chat template (e.g. `{"enable_thinking": False}`).

    A hub name needs network access (or a populated hub cache); when neither is there
    the error says so instead of showing a stack of HTTP retries.
    """
    if dtype not in DTYPES:
        raise ModelLoadError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    target = str(path_or_name)
    is_local = Path(target).expanduser().is_dir()
    if is_local:
        target = str(Path(target).expanduser())
    torch_device = _resolve_device(device)
    dtype = runnable_dtype(dtype, torch_device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(target)
        model = AutoModelForCausalLM.from_pretrained(
            target, dtype=DTYPES[dtype], device_map=torch_device
        )
    except (OSError, ValueError) as exc:
        where = (
            f"local directory {target}"
            if is_local
            else f"{target!r}, which is not a local directory, so it was looked up on the "
            "Hugging Face hub (that needs network access or a populated HF cache)"
        )
        raise ModelLoadError(f"could not load a causal LM from {where}: {exc}") from exc
    return HFChatModel(
        model,
        tokenizer,
        name=name or f"hf:{path_or_name}",
        template=template,
        max_batch_size=max_batch_size,
        kv_reuse=kv_reuse,
        template_kwargs=template_kwargs,
    )
