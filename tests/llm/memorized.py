"""A tiny random-weight model taught to say one thing, saved as a training checkpoint.

Serving tests need a checkpoint whose greedy reply is known (a tool call, a refusal):
a random model's never is. A few SFT steps on `reply` after several different prompts
make the 2-layer model answer `reply` to any prompt, and `save_checkpoint` writes it the
way a training run does (standalone tokenizer: the tool template travels with it).
"""

from __future__ import annotations

from pathlib import Path

import torch

from agentwheel.core.messages import ChatRequest, Message, SamplingParams
from agentwheel.core.task import ToolSpec
from agentwheel.llm.hf import HFChatModel
from agentwheel.settings.trainer import SFTConfig
from agentwheel.train.batching import TrainSequence
from agentwheel.train.checkpoint import TrainerState, save_checkpoint
from agentwheel.train.sft import SFTTrainer

PROMPTS = ["Please cancel my order O-1.", "What is the status of ticket T-9?"]
# Not trained on: the reply must also follow it before teaching stops.
CHECK_PROMPT = "Hello, where is my order O-1?"
SYSTEM = "You are a support agent."


def _conversation(prompt: str) -> list[Message]:
    return [Message(role="system", content=SYSTEM), Message(role="user", content=prompt)]


def teach_reply(
    model: HFChatModel, reply: Message, tools: list[ToolSpec], max_steps: int = 300
) -> None:
    """Train `model` in place until its greedy reply to `CHECK_PROMPT` is `reply`'s text
    (checked every 20 steps); fails the calling test if `max_steps` are not enough."""
    data = []
    for prompt in PROMPTS:
        ids, mask = model.renderer.conversation_ids([*_conversation(prompt), reply], tools)
        data.append(TrainSequence(ids=ids, loss_mask=mask))
    expected = model.renderer.assistant_text(reply)
    trainer = SFTTrainer(model.model, SFTConfig(lr=1e-2, batch_size=len(data), epochs=max_steps))
    check = ChatRequest(messages=_conversation(CHECK_PROMPT), tools=tools)
    for steps in range(20, max_steps + 1, 20):
        trainer.train(data, max_steps=steps)
        model.model.eval()
        model.release_kv_cache()
        said = model.chat([check], SamplingParams(max_new_tokens=96))[0].text
        if said == expected:
            return
    raise AssertionError(f"after {max_steps} steps the model says {said!r}, not {expected!r}")


def save_as_checkpoint(model: HFChatModel, path: Path) -> Path:
    """`model` as a training run saves it: `path/model` loads with `hf:<path>/model`."""
    optimizer = torch.optim.AdamW(model.model.parameters())
    return save_checkpoint(
        path, model.model, optimizer, TrainerState(step=1), tokenizer=model.standalone_tokenizer()
    )
