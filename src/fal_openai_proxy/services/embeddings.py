"""POST /v1/embeddings: always fal's OpenAI route, whatever MODEL_ROUTES says."""

from __future__ import annotations

import orjson
from starlette.responses import Response
from starlette.types import Receive

from ..fal.openrouter import EMBEDDINGS
from ..openai.base import CheckedBody
from ..serve.context import RequestContext
from ..translate.openrouter_embeddings import repair_embeddings
from .openrouter import OpenRouterService


class EmbeddingsService(OpenRouterService):
    async def create(
        self, request: CheckedBody, context: RequestContext, receive: Receive
    ) -> Response:
        request.body["model"] = self._catalog.chat_model(request.model)
        self.note("embeddings", request.model, False, context)
        self.log_input(request.body, context)
        answer = await self.post(EMBEDDINGS, request.body, context, receive)
        return Response(
            orjson.dumps(repair_embeddings(answer, request.model)), media_type="application/json"
        )
