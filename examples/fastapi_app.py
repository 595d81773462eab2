"""An app that traces each request to its tenant's LangSmith project with the tenant's key.

The tenant comes from the `X-Tenant-Id` header. Run it against the local stack:

    source .devstack/env   # from `tenant-keys devstack`
    .venv/bin/uvicorn --factory examples.fastapi_app:create_app --port 8000
    curl -s -X POST localhost:8000/chat -H 'X-Tenant-Id: acme' -H 'content-type: application/json' \
         -d '{"question": "hello"}'
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, Header
from langsmith import traceable
from pydantic import BaseModel

from tenant_keys.runtime import TenantTracing


class Question(BaseModel):
    question: str


class Answer(BaseModel):
    answer: str
    traced: bool


@traceable(name="answer-question")
async def answer_question(question: str, tenant_id: str) -> str:
    await asyncio.sleep(0)  # stands in for the LLM call; lets concurrent requests interleave
    return f"{tenant_id} asked: {question}"


def create_app(tracing: TenantTracing | None = None) -> FastAPI:
    tracing = tracing or TenantTracing.from_settings()
    app = FastAPI(title="tenant-keys example app")

    @app.post("/chat")
    async def chat(body: Question, x_tenant_id: str = Header()) -> Answer:
        with tracing.context(x_tenant_id) as handle:
            answer = await answer_question(body.question, x_tenant_id)
        return Answer(answer=answer, traced=handle is not None)

    return app
