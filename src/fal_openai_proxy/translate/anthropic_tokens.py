"""An estimate of a Messages request's input tokens (/v1/messages/count_tokens).

Every text the model reads (system, message text, tool calls and results, thinking, tool
definitions as JSON) is counted by the tokenizer (which remembers long texts: an agent sends
the same system prompt and tools on every turn); images and PDF
pages are counted at the rates Anthropic documents for them (an image of about a megapixel
is ~1,600 tokens; a PDF page 1,500-3,000): the counts grow with the input but are not
Claude's own (docs/anthropic.md).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

import orjson

from ..anthropic.messages import (
    Base64Source,
    ContentSource,
    CountTokensRequest,
    DocumentBlock,
    ImageBlock,
    PlainTextSource,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)

IMAGE_TOKENS = 1_600
PDF_PAGE_TOKENS = 1_500
MESSAGE_TOKENS = 4  # a turn's framing (role, separators)
TOOL_TOKENS = 8  # a tool definition's framing
_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def count_request(request: CountTokensRequest, count: Callable[[str], int]) -> int:
    texts: list[str] = []
    fixed = 0
    system = request.system
    if isinstance(system, str):
        texts.append(system)
    elif system:
        texts.extend(block.text for block in system)
    for tool in request.tools or ():
        texts.append(orjson.dumps(tool).decode())
        fixed += TOOL_TOKENS
    for message in request.messages:
        fixed += MESSAGE_TOKENS
        if isinstance(message.content, str):
            texts.append(message.content)
            continue
        for block in message.content:
            fixed += _block(block, texts)
    return sum(count(text) for text in texts) + fixed


def _block(block: object, texts: list[str]) -> int:
    """Adds a block's texts; returns its tokens counted at a fixed rate."""
    if isinstance(block, TextBlock):
        texts.append(block.text)
    elif isinstance(block, ThinkingBlock):
        texts.append(block.thinking)
    elif isinstance(block, ToolUseBlock):
        texts.append(block.name)
        texts.append(orjson.dumps(block.input).decode())
    elif isinstance(block, ToolResultBlock):
        if isinstance(block.content, str):
            texts.append(block.content)
        return sum(
            _block(part, texts)
            for part in block.content or ()
            if not isinstance(block.content, str)
        )
    elif isinstance(block, ImageBlock):
        return IMAGE_TOKENS
    elif isinstance(block, DocumentBlock):
        return _document(block, texts)
    elif isinstance(block, RedactedThinkingBlock):
        return 0
    return 0


def _document(block: DocumentBlock, texts: list[str]) -> int:
    source = block.source
    texts.extend(x for x in (block.title, block.context) if x)
    if isinstance(source, PlainTextSource):
        texts.append(source.data)
        return 0
    if isinstance(source, ContentSource):
        if isinstance(source.content, str):
            texts.append(source.content)
            return 0
        return sum(_block(part, texts) for part in source.content)
    if isinstance(source, Base64Source):
        try:
            pages = len(_PAGE.findall(base64.b64decode(source.data)))
        except (binascii.Error, ValueError):
            pages = 0
        return max(pages, 1) * PDF_PAGE_TOKENS
    return PDF_PAGE_TOKENS
