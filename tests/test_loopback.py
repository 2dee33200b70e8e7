"""The loopback server itself, seen through the real openai client."""

from __future__ import annotations

import threading
import time

import httpx2
import openai
import pytest

from rlm.loopback import Fault, LoopbackServer, Reply


@pytest.fixture
def client(llm: LoopbackServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=llm.base_url, api_key="sk-test", max_retries=0, timeout=5)


def ask(client: openai.OpenAI, **kw: object):  # type: ignore[no-untyped-def]
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], **kw)


def test_scripted_answers_and_usage(llm: LoopbackServer, client: openai.OpenAI) -> None:
    llm.script("first", Reply("second", prompt_tokens=11, completion_tokens=7))
    a, b = ask(client), ask(client)
    assert a.choices[0].message.content == "first" and a.usage is not None and a.usage.prompt_tokens > 0
    assert b.choices[0].message.content == "second" and (b.usage.prompt_tokens, b.usage.completion_tokens) == (11, 7)
    assert ask(client).choices[0].message.content == "ok"  # default once the script is used up


def test_usage_can_be_left_out(llm: LoopbackServer, client: openai.OpenAI) -> None:
    llm.script(Reply("x", usage=False))
    assert ask(client).usage is None
    llm.usage = False
    assert ask(client).usage is None


def test_responder_sees_the_request(llm: LoopbackServer, client: openai.OpenAI) -> None:
    llm.responder = lambda body: f"echo {body['messages'][-1]['content']} {body.get('max_completion_tokens')}"
    assert ask(client, max_completion_tokens=9).choices[0].message.content == "echo hi 9"


def test_request_log_records_body_time_and_concurrency(llm: LoopbackServer, client: openai.OpenAI) -> None:
    llm.latency = 0.2
    threads = [threading.Thread(target=ask, args=(client,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(llm.chat_requests) == 4
    assert llm.max_in_flight >= 3
    assert llm.chat_requests[0].body["model"] == "gpt-4o-mini"
    assert llm.chat_requests[0].headers.get("authorization") == "Bearer sk-test"


def test_latency_is_added(llm: LoopbackServer, client: openai.OpenAI) -> None:
    llm.script(Reply("slow", latency=0.3))
    t = time.monotonic()
    ask(client)
    assert time.monotonic() - t >= 0.3


def test_models_endpoint(client: openai.OpenAI) -> None:
    assert "gpt-4o-mini" in [m.id for m in client.models.list()]


def test_429_with_retry_after(llm: LoopbackServer, client: openai.OpenAI) -> None:
    llm.script(Fault.rate_limit(retry_after=2), Fault.rate_limit(retry_after_ms=150))
    with pytest.raises(openai.RateLimitError) as first:
        ask(client)
    assert first.value.response.headers["retry-after"] == "2"
    with pytest.raises(openai.RateLimitError) as second:
        ask(client)
    assert second.value.response.headers["retry-after-ms"] == "150"


def test_500_and_401(llm: LoopbackServer, client: openai.OpenAI) -> None:
    llm.script(Fault.server_error(), Fault.unauthorized())
    with pytest.raises(openai.InternalServerError):
        ask(client)
    with pytest.raises(openai.AuthenticationError):
        ask(client)


def test_hang_times_out_in_the_client(llm: LoopbackServer) -> None:
    llm.script(Fault("hang", seconds=5))
    quick = openai.OpenAI(base_url=llm.base_url, api_key="k", max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        ask(quick)


def test_trickle_defeats_the_per_read_timeout(llm: LoopbackServer) -> None:
    """Each byte arrives inside the read timeout, so the SDK's timeout never fires."""
    llm.script(Fault("trickle", interval=0.005))
    client = openai.OpenAI(base_url=llm.base_url, api_key="k", max_retries=0, timeout=0.2)
    t = time.monotonic()
    reply = ask(client)
    assert reply.choices[0].message.content == "ok"
    assert time.monotonic() - t > 0.6  # far longer than the 0.2 s timeout


def test_malformed_body(llm: LoopbackServer, client: openai.OpenAI) -> None:
    llm.script(Fault("malformed"))
    with pytest.raises((openai.APIResponseValidationError, ValueError, openai.APIConnectionError)):
        ask(client)


def test_dropped_connection(llm: LoopbackServer, client: openai.OpenAI) -> None:
    llm.script(Fault("drop"))
    with pytest.raises(openai.APIConnectionError):
        ask(client)


def test_json_mode_refusal(llm: LoopbackServer, client: openai.OpenAI) -> None:
    llm.refuse_json_mode = True
    with pytest.raises(openai.BadRequestError, match="response_format"):
        ask(client, response_format={"type": "json_object"})
    assert ask(client).choices[0].message.content == "ok"


def test_raw_http_works_without_the_sdk(llm: LoopbackServer) -> None:
    r = httpx2.post(f"{llm.base_url}/chat/completions", json={"model": "m", "messages": []})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "ok"


def test_server_closes_while_hanging() -> None:
    server = LoopbackServer()
    server.script(Fault("hang", seconds=30))
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0, timeout=5)
    threading.Thread(target=lambda: pytest.raises(Exception, ask, client), daemon=True).start()
    time.sleep(0.2)
    t = time.monotonic()
    server.close()
    assert time.monotonic() - t < 2
