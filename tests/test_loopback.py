"""The loopback server itself, seen through the real openai client."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import httpx2
import openai
import pytest

from rlm.loopback import Fault, LoopbackServer, Reply
from tests.support import ROOT


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


def test_a_burst_of_new_connections_is_accepted_at_once(llm: LoopbackServer) -> None:
    # 32 workers connecting together: none may wait for the kernel to retry a SYN the backlog dropped (1 s+).
    together = threading.Barrier(32)
    took: list[float] = []

    def connect() -> None:
        together.wait()
        t = time.monotonic()
        with socket.create_connection(("127.0.0.1", llm.port), timeout=5) as conn:
            conn.sendall(b"GET /v1/models HTTP/1.1\r\nHost: loopback\r\nConnection: close\r\n\r\n")
            assert conn.recv(12).startswith(b"HTTP/1.")
        took.append(time.monotonic() - t)

    workers = [threading.Thread(target=connect) for _ in range(32)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(took) == 32 and max(took) < 0.9


def test_server_closes_while_hanging() -> None:
    server = LoopbackServer()
    server.script(Fault("hang", seconds=30))
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0, timeout=5)
    threading.Thread(target=lambda: pytest.raises(Exception, ask, client), daemon=True).start()
    time.sleep(0.2)
    t = time.monotonic()
    server.close()
    assert time.monotonic() - t < 2


def test_streamed_answers_are_cut_at_the_requested_cap(llm: LoopbackServer, client: openai.OpenAI) -> None:
    llm.script(Reply("abcd" * 50))
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                            max_tokens=3, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text == "abcd" * 3 and finish == ["length"] and chunks[-1].usage.completion_tokens == 3


def test_the_server_runs_from_the_shell_until_interrupted(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    (tmp_path / "answers.py").write_text(  # a responder may fault as well as answer
        "from rlm.loopback import Fault\n\n"
        "def answer(body):\n"
        "    if 'fail' in body['messages'][-1]['content']:\n"
        "        return Fault('status', status=503)\n"
        "    return 'from the responder'\n")
    proc = subprocess.Popen([sys.executable, "-m", "rlm.loopback", "--port", "0", "--responder", "answers:answer",
                             "--model", "tiny", "--fault", "429:0"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    try:
        first = proc.stdout.readline()  # type: ignore[union-attr]
        assert first.startswith("loopback model serving tiny at http://127.0.0.1:")
        base_url = first.split(" at ")[1].strip()
        assert f"export OPENAI_BASE_URL={base_url}" in proc.stdout.readline()  # type: ignore[union-attr]
        shell_client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=1, timeout=5)
        answer = shell_client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "q"}])
        assert answer.choices[0].message.content == "from the responder"  # after the scripted 429
        assert [m.id for m in shell_client.models.list().data] == ["tiny"]
        with pytest.raises(openai.InternalServerError):
            shell_client.with_options(max_retries=0).chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "please fail"}])
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "served 3 chat requests" in err and "Traceback" not in err


def test_the_shell_server_refuses_bad_switches() -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "rlm.loopback", "--fault", "teapot"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "unknown fault 'teapot'" in proc.stderr
