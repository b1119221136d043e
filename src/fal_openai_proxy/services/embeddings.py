"""POST /v1/embeddings: always fal's OpenAI route, whatever MODEL_ROUTES says."""

from __future__ import annotations

import orjson
from starlette.responses import Response
from starlette.types import Receive

from ..context import RequestContext
from ..fal.openai_route import EMBEDDINGS
from ..openai.endpoints import RouteRequest
from ..translate.openai_route import repair_embeddings
from .openai_route import RouteService


class EmbeddingsService(RouteService):
    async def create(
        self, request: RouteRequest, context: RequestContext, receive: Receive
    ) -> Response:
        request.body["model"] = self._catalog.chat_model(request.model)
        self.note("embeddings", request.model, False, context)
        self.log_input(request.body, context)
        answer = await self.post(EMBEDDINGS, request.body, context, receive)
        return Response(
            orjson.dumps(repair_embeddings(answer, request.model)), media_type="application/json"
        )
