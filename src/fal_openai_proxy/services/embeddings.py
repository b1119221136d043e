"""POST /v1/embeddings: always fal's OpenAI route, whatever MODEL_ROUTES says."""

from __future__ import annotations

import orjson
from starlette.responses import Response
from starlette.types import Receive

from ..fal.openrouter import EMBEDDINGS
from ..openai.base import CheckedBody
from ..serve.context import RequestContext
from ..translate.cost import asked_for_accounting
from ..translate.openrouter import chat_accounting
from ..translate.openrouter_embeddings import repair_embeddings
from .openrouter import OpenRouterService


class EmbeddingsService(OpenRouterService):
    async def create(
        self, request: CheckedBody, context: RequestContext, receive: Receive
    ) -> Response:
        request.body["model"] = self._catalog.chat_model(request.model)
        self.note("embeddings", request.model, False, context)
        self.log_input(request.body, context)
        answer = repair_embeddings(
            await self.post(EMBEDDINGS, request.body, context, receive), request.model
        )
        # The body goes on as it is; OpenRouter's `usage.cost` reaches a client that asked
        # for it (docs/fal-protocol.md §14.4).
        used, cost = chat_accounting(answer["usage"], asked_for_accounting(request.body))
        self.settle(context, request.model, used, cost)
        return Response(orjson.dumps(answer), media_type="application/json")
