"""The OpenAI side: request models, error bodies, response and SSE framing."""
