"""A tiny random-weight model taught to say one thing, saved as a training checkpoint.

Serving tests need a checkpoint whose greedy reply is known (a tool call, a refusal):
a random model's never is. A few SFT steps on `reply` after several different prompts
make the 2-layer model answer `reply` to any prompt, and `save_checkpoint` writes it the
way a training run does (standalone tokenizer: the tool template travels with it).
"""

from __future__ import annotations

from pathlib import Path

import torch

from agentwheel.core.messages import Message
from agentwheel.core.task import ToolSpec
from agentwheel.llm.hf import HFChatModel
from agentwheel.train.batching import TrainSequence
from agentwheel.train.checkpoint import TrainerState, save_checkpoint
from agentwheel.train.config import SFTConfig
from agentwheel.train.sft import SFTTrainer

PROMPTS = ["Please cancel my order O-1.", "What is the status of ticket T-9?"]


def teach_reply(model: HFChatModel, reply: Message, tools: list[ToolSpec], steps: int = 60) -> None:
    """Train `model` in place until `reply` follows every prompt of `PROMPTS`."""
    data = []
    for prompt in PROMPTS:
        conversation = [
            Message(role="system", content="You are a support agent."),
            Message(role="user", content=prompt),
            reply,
        ]
        ids, mask = model.renderer.conversation_ids(conversation, tools)
        data.append(TrainSequence(ids=ids, loss_mask=mask))
    config = SFTConfig(lr=3e-2, batch_size=len(data), epochs=steps, warmup_steps=0)
    trainer = SFTTrainer(model.model, config)
    trainer.train(data, max_steps=steps)
    model.model.eval()
    model.release_kv_cache()


def save_as_checkpoint(model: HFChatModel, path: Path) -> Path:
    """`model` as a training run saves it: `path/model` loads with `hf:<path>/model`."""
    optimizer = torch.optim.AdamW(model.model.parameters())
    return save_checkpoint(
        path, model.model, optimizer, TrainerState(step=1), tokenizer=model.standalone_tokenizer()
    )
