"""The "System Top + Separator + Recency" strategy (docs/prompt-strategy.md), to the character.

fal's chat apps take two strings, `prompt` and `system_prompt`, not a message list. System text
goes on top of `system_prompt`; the newest turns fill `prompt`; older turns spill into
`system_prompt` after SEPARATOR; the oldest are dropped once both are full.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..openai.chat import ChatMessage, ImagePart, TextPart

SEPARATOR = "\n\n-------下面是比较早之前的对话内容-----\n\n"

_BLOCK_PREFIX = {"user": "Human: ", "assistant": "Assistant: "}
_SYSTEM_ROLES = ("system", "developer")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlatPrompt:
    prompt: str
    system_prompt: str
    image_urls: list[str] = field(default_factory=list)


def message_text(message: ChatMessage) -> str:
    """A message's text: text parts joined by newlines; image parts carry no text."""
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text for part in content if isinstance(part, TextPart))


def message_images(messages: Sequence[ChatMessage]) -> list[str]:
    return [
        part.url
        for message in messages
        if isinstance(message.content, list)
        for part in message.content
        if isinstance(part, ImagePart)
    ]


def flatten_messages(
    messages: Sequence[ChatMessage], prompt_limit: int, system_prompt_limit: int
) -> FlatPrompt:
    system_text, blocks = _split_roles(messages)
    system_text = system_text[:system_prompt_limit].strip()
    remaining = max(0, system_prompt_limit - (len(system_text) + 4 if system_text else 0))
    prompt_blocks, history_blocks = _fill_newest_first(blocks, prompt_limit, remaining)
    history = "".join(history_blocks).strip()
    prompt = "".join(prompt_blocks).strip()
    if system_text and history:
        system_prompt = system_text + SEPARATOR + history
    else:
        system_prompt = system_text or history
    return FlatPrompt(prompt, system_prompt, message_images(messages))


def _split_roles(messages: Sequence[ChatMessage]) -> tuple[str, list[str]]:
    system_parts: list[str] = []
    blocks: list[str] = []
    for message in messages:
        if message.role in _SYSTEM_ROLES:
            system_parts.append(f"System: {message_text(message)}\n\n")
        elif prefix := _BLOCK_PREFIX.get(message.role):
            blocks.append(f"{prefix}{message_text(message)}\n\n")
        else:
            log.debug("skipping a message with role %s", message.role)
    return "".join(system_parts), blocks


def _fill_newest_first(
    blocks: list[str], prompt_limit: int, history_limit: int
) -> tuple[list[str], list[str]]:
    """Newest blocks into the prompt until one does not fit, then into the history.

    Once a block does not fit in one of them, no older block is tried there again.
    """
    prompt_blocks: list[str] = []
    history_blocks: list[str] = []
    prompt_len = history_len = 0
    prompt_full, history_full = False, history_limit <= 0
    for block in reversed(blocks):
        if prompt_full and history_full:
            break
        if not prompt_full:
            # FIX: the newest block always goes in, even alone over the limit.
            if prompt_len + len(block) <= prompt_limit or not prompt_blocks:
                prompt_blocks.append(block)
                prompt_len += len(block)
                continue
            prompt_full = True
        if not history_full:
            if history_len + len(block) <= history_limit:
                history_blocks.append(block)
                history_len += len(block)
                continue
            history_full = True
    prompt_blocks.reverse()
    history_blocks.reverse()
    return prompt_blocks, history_blocks
