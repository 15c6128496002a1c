"""Chat back-end on a vLLM engine in this process, token-in, token-out, with weight refresh.

`VLLMChatModel.chat` prepares prompts exactly as `HFChatModel` does (the request's
`prompt_ids` verbatim, else the renderer's ids; failures become error completions) and
sends all of them to `vllm.LLM.generate` in one call, as token prompts. Every completion
carries the generated ids (end-of-turn token included when it was generated) and the
log-probability of each under the distribution it was sampled from.

`load_weights` copies new weights (Hugging Face names, e.g. the LoRA-merged policy after an
optimizer step) into the engine's model in place and drops the prefix cache, whose KV
blocks were computed with the old weights.

Version assumptions (vLLM >= 0.10.2, V1 engine; checked against vLLM's `LLM`, `LLMEngine`
and `WorkerBase` sources and TRL's colocate mode):
- The engine core is built in this process (`VLLM_ENABLE_V1_MULTIPROCESSING=0` while
  `LLM` is constructed) with one GPU (`tensor_parallel_size=1`, the uniprocess executor).
  `LLM.apply_model(fn)` then runs `fn(model)` on the worker's `nn.Module` directly, so the
  trainer's tensors reach `model.load_weights` by reference: no pickling, no IPC. (In the
  default multiprocess mode the callable and every tensor would be serialized to the
  engine process, and callables need `VLLM_ALLOW_INSECURE_SERIALIZATION=1`.) TRL's
  colocate mode reaches the same model as
  `llm.llm_engine.model_executor.driver_worker.model_runner.model.load_weights`, which
  also only exists in-process; `apply_model` goes through the public API and the worker's
  `get_model()`.
- vLLM model classes' `load_weights` take checkpoint (Hugging Face) names and stack q/k/v
  and gate/up projections themselves. Unquantized weights only: quantized layers need
  `process_weights_after_loading`, which this does not run.
- `logprobs_mode="processed_logprobs"` makes the returned log-probs those of the sampling
  distribution (`log_softmax(logits / temperature)`, after top-p), not the raw model's.
  vLLM 0.10.0 and 0.10.1 applied temperature after computing "processed" log-probs, hence
  the 0.10.2 floor (as TRL's). Greedy requests get temperature-1 log-probs, like
  `HFChatModel`. Unlike `HFChatModel`, `top_p < 1` truncation is reflected in them.
- `SamplingParams(top_k=-1)` disables top-k in every version (newer ones also take 0).
- `CompletionOutput.token_ids` includes the stop token (eos or one of `stop_token_ids`)
  when generation stopped on one; `logprobs` is one `{token_id: Logprob}` dict per
  generated token, holding the sampled token when `logprobs=0`.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from agentwheel.core.messages import ChatRequest, Completion, FinishReason, SamplingParams
from agentwheel.llm.hf import ModelLoadError, completion_from_ids, prepare_prompts, stop_token_ids
from agentwheel.llm.template import ChatTemplateRenderer

INSTALL_HINT = 'pip install -e ".[vllm]" on a machine with a CUDA GPU'


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise ModelLoadError(
            f"the vLLM back-end needs the vllm package, which could not be imported ({exc}); "
            f"install it with {INSTALL_HINT}"
        ) from exc
    return vllm


def _load_into(weights: list[tuple[str, torch.Tensor]], model: torch.nn.Module) -> None:
    # Runs in the worker (with the engine core in this process: here) on vLLM's own model.
    model.load_weights(weights)  # type: ignore[operator]


class VLLMChatModel:
    """A `vllm.LLM` behind the `ChatModel` protocol.

    `llm` must run its engine core in this process (see `load_vllm_model`) for
    `load_weights` to hand tensors over by reference. `max_context` defaults to the
    engine's `max_model_len`. `eos_token_ids` are extra ids to stop on (a checkpoint's
    generation config), besides the end-of-turn token and the tokenizer's eos.
    """

    def __init__(
        self,
        llm: Any,
        tokenizer: Any,
        name: str,
        template: str | None = None,
        max_context: int | None = None,
        template_kwargs: Mapping[str, Any] | None = None,
        eos_token_ids: Sequence[int] = (),
    ):
        self._vllm = _import_vllm()
        self.llm = llm
        self.tokenizer = tokenizer
        self.name = name
        self._renderer = ChatTemplateRenderer(tokenizer, template, template_kwargs)
        self.max_context = max_context or int(llm.llm_engine.model_config.max_model_len)
        self.stop_ids = stop_token_ids(
            self._renderer.end_of_turn_id, tokenizer.eos_token_id, list(eos_token_ids)
        )
        self.asleep = False

    @property
    def renderer(self) -> ChatTemplateRenderer:
        return self._renderer

    def chat(self, requests: Sequence[ChatRequest], params: SamplingParams) -> list[Completion]:
        """One completion per request, in request order, from one `generate` call.

        With `params.seed` set, request `i` is sampled with seed `params.seed + i`: the
        copies of one prompt in a call (a GRPO group) get different samples, and each
        request's ids depend on its prompt, seed and position, not on the rest of the batch
        (up to the numerics of batched kernels).
        """
        results, prompts = prepare_prompts(self._renderer, requests, self.max_context, self.name)
        if prompts:
            self.wake_up()
            outputs = self.llm.generate(
                [{"prompt_token_ids": ids} for _, ids in prompts],
                [self._sampling_params(params, index, len(ids)) for index, ids in prompts],
                use_tqdm=False,
            )
            for (index, ids), output in zip(prompts, outputs, strict=True):
                results[index] = self._completion(requests[index], len(ids), output.outputs[0])
        assert all(r is not None for r in results)
        return [r for r in results if r is not None]

    def _sampling_params(self, params: SamplingParams, index: int, prompt_len: int) -> Any:
        greedy = params.temperature <= 0
        # Every knob is explicit, as in HFChatModel: no penalties, no top-k, no min-p.
        return self._vllm.SamplingParams(
            n=1,
            temperature=0.0 if greedy else params.temperature,
            top_p=1.0 if greedy else params.top_p,
            top_k=-1,
            min_p=0.0,
            repetition_penalty=1.0,
            max_tokens=max(1, min(params.max_new_tokens, self.max_context - prompt_len)),
            stop_token_ids=list(self.stop_ids),
            seed=None if params.seed is None else params.seed + index,
            logprobs=0,
            # Text comes from completion_from_ids; vLLM's own detokenizing is wasted work.
            detokenize=False,
        )

    def _completion(self, request: ChatRequest, prompt_tokens: int, output: Any) -> Completion:
        # token_ids ends with the stop token when generation stopped on one; it stays in
        # completion_ids, as HFChatModel keeps it, so the renderer closes the turn without
        # appending a second one and the trained ids are the sampled ids.
        ids = [int(t) for t in output.token_ids]
        finish: FinishReason
        if output.finish_reason == "stop" or (ids and ids[-1] in self.stop_ids):
            finish = "stop"
        elif output.finish_reason == "length":
            finish = "length"
        else:
            return Completion(
                finish_reason="error",
                error=f"vLLM ended the request with finish_reason={output.finish_reason!r}",
                prompt_tokens=prompt_tokens,
            )
        logprobs = (
            [float(step[token].logprob) for step, token in zip(output.logprobs, ids, strict=True)]
            if output.logprobs is not None
            else None
        )
        return completion_from_ids(self._renderer, request, prompt_tokens, ids, logprobs, finish)

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy `(Hugging Face name, tensor)` pairs into the engine's model in place, then
        reset the prefix cache. Tensors may live on any device (each is copied into vLLM's
        parameter); the model class's `load_weights` maps the names onto its own layout."""
        weights = list(named_tensors)
        self.wake_up()
        self.llm.apply_model(functools.partial(_load_into, weights))
        # Cached KV blocks were computed with the old weights; a prompt prefix seen before
        # the update must not reuse them.
        self.llm.reset_prefix_cache()

    def sleep(self, level: int = 1) -> None:
        """Free the engine's GPU memory (needs `enable_sleep_mode=True`), e.g. for an
        optimizer step. Level 1 keeps the weights in CPU memory; level 2 discards them, so
        `load_weights` must then load every parameter (and buffers are not restored)."""
        self.llm.sleep(level=level)
        self.asleep = True

    def wake_up(self) -> None:
        """Give the engine its GPU memory back; `chat` and `load_weights` call it."""
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False


@contextlib.contextmanager
def _engine_in_this_process() -> Iterator[None]:
    """Build the V1 engine core in this process (read when `LLM` is constructed), then put
    the variable back so other code sees the environment it set."""
    key = "VLLM_ENABLE_V1_MULTIPROCESSING"
    before = os.environ.get(key)
    os.environ[key] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _generation_eos_ids(path: str) -> list[int]:
    from transformers import GenerationConfig

    try:
        eos = GenerationConfig.from_pretrained(path).eos_token_id
    except OSError:  # no generation_config.json
        return []
    if isinstance(eos, int):
        return [eos]
    return [int(i) for i in eos or []]


def load_vllm_model(
    path: str | Path,
    dtype: str = "bfloat16",
    gpu_memory_utilization: float = 0.3,
    max_model_len: int | None = None,
    name: str | None = None,
    template: str | None = None,
    enable_sleep_mode: bool = False,
    seed: int = 0,
    template_kwargs: Mapping[str, Any] | None = None,
) -> VLLMChatModel:
    """A vLLM engine on one GPU for the model at `path` (a local directory or hub name),
    with the Hugging Face tokenizer from the same path.

    `gpu_memory_utilization` is the share of GPU memory vLLM takes (weights and KV cache);
    the default leaves most of it to a trainer on the same GPU.
    """
    vllm = _import_vllm()
    from transformers import AutoTokenizer

    target = str(path)
    if Path(target).expanduser().is_dir():
        target = str(Path(target).expanduser())
    try:
        tokenizer = AutoTokenizer.from_pretrained(target)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not load a tokenizer from {target}: {exc}") from exc
    with _engine_in_this_process():
        llm = vllm.LLM(
            model=target,
            tokenizer=target,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            enable_sleep_mode=enable_sleep_mode,
            seed=seed,
            tensor_parallel_size=1,
            logprobs_mode="processed_logprobs",
        )
    return VLLMChatModel(
        llm,
        tokenizer,
        name=name or f"vllm:{path}",
        template=template,
        template_kwargs=template_kwargs,
        eos_token_ids=_generation_eos_ids(target),
    )
