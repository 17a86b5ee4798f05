"""``ponder serve``: an OpenAI-compatible chat API for reasoning models, and a playground page.

    from ponder.serve import ServeConfig, create_app, Running
    app = create_app(engine, ServeConfig(reasoning="full"), model_name="tiny")
    with Running(app) as server:          # uvicorn on 127.0.0.1, any free port
        openai.OpenAI(base_url=server.url + "/v1", api_key="x").chat.completions.create(...)

The response keeps the reasoning apart from the answer (``reasoning_content`` and ``reasoning``
beside ``content``); requests from many clients are batched together on the local engine
(``ponder.serve.batcher``). See docs/serving.md.
"""

from ponder.serve.app import Running, create_app, model_name_for
from ponder.serve.config import REASONING_MODES, ServeConfig
from ponder.serve.protocol import ApiError, summarize

__all__ = ["ApiError", "REASONING_MODES", "Running", "ServeConfig", "create_app", "model_name_for", "summarize"]
