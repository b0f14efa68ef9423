"""The conformance suite's remote functions, written with the official
Python SDK (apache-flink-statefun==3.3.0) and served with aiohttp.

They are the same functions as conformance/gofns_test.go (official Go SDK)
and must produce exactly the same records. Every function lives in
namespace "remote"; egress "cf/out" is the test's capturing egress,
"cf/stdout" a module stdout egress.

Usage:
    python functions.py --port 0                      # TCP on 127.0.0.1
    python functions.py --unix /path/fn.sock          # unix socket
    python functions.py --port 0 --tls-cert C --tls-key K

Once listening it prints one line "LISTENING <port>" (or "LISTENING unix")
on stdout. It exits when its standard input is closed, so it never
outlives the test that started it.
"""

import argparse
import asyncio
import ssl
import sys
from datetime import timedelta

from aiohttp import web

from statefun import (BoolType, DoubleType, FloatType, IntType, LongType,
                      RequestReplyHandler, StatefulFunctions, StringType,
                      ValueSpec, egress_message_builder, make_json_type,
                      message_builder)

functions = StatefulFunctions()

JSON_TYPE = make_json_type("cf/json")
TTL = timedelta(milliseconds=300)
TICK_MS, TICKS = 60, 8


def caller_string(caller):
    if caller is None:
        return "none"
    return f"{caller.typename}/{caller.id}"


def out(context, text):
    context.send_egress(egress_message_builder(target_typename="cf/out", value=text, value_type=StringType))


def send(context, typename, target_id, value):
    context.send(message_builder(target_typename=typename, target_id=target_id, str_value=value))


# ---- scenario 1: state of every well-known type and a JSON type ----

@functions.bind(typename="remote/types", specs=[
    ValueSpec(name="b", type=BoolType),
    ValueSpec(name="i", type=IntType),
    ValueSpec(name="l", type=LongType),
    ValueSpec(name="f", type=FloatType),
    ValueSpec(name="d", type=DoubleType),
    ValueSpec(name="s", type=StringType),
    ValueSpec(name="j", type=JSON_TYPE),
])
def types(context, message):
    st = context.storage

    def present(v, fmt):
        return "-" if v is None else fmt(v)

    b, i, l, f, d, s, j = st.b, st.i, st.l, st.f, st.d, st.s, st.j
    fields = [
        "b=" + present(b, lambda v: "true" if v else "false"),
        "i=" + present(i, str),
        "l=" + present(l, str),
        "f=" + present(f, lambda v: f"{v:.2f}"),
        "d=" + present(d, lambda v: f"{v:.2f}"),
        "s=" + present(s, str),
        "j=" + present(j, lambda v: f"{v['n']}:{v['last']}"),
    ]
    out(context, f"{context.address.id} " + " ".join(fields))
    n = (i or 0) + 1
    m = message.as_string()
    st.b = n % 2 == 1
    st.i = n
    st.l = n * 10_000_000_000
    st.f = n * 0.5
    st.d = n * 1.25
    st.s = f"{m}#{n}"
    st.j = {"n": n, "last": m}


# ---- scenario 2: expiration ----

@functions.bind(typename="remote/expiry", specs=[
    ValueSpec(name="w", type=IntType, expire_after_write=TTL),
    ValueSpec(name="wr", type=IntType, expire_after_write=TTL),
    ValueSpec(name="c", type=IntType, expire_after_call=TTL),
    ValueSpec(name="n", type=IntType),
])
def expiry(context, message):
    st = context.storage
    me = context.address

    def get(v):
        return "-" if v is None else str(v)

    def after(ms, value):
        context.send_after(timedelta(milliseconds=ms),
                           message_builder(target_typename=me.typename, target_id=me.id, str_value=value))

    m = message.as_string()
    if m == "start":
        st.w = 1
        st.wr = 1
        st.c = 1
        st.n = 0
        after(TICK_MS, "tick")
    elif m == "tick":
        n = (st.n or 0) + 1
        st.n = n
        if n in (1, TICKS):
            out(context, f"{me.id} tick{n} w={get(st.w)} wr={get(st.wr)} c={get(st.c)}")
        else:
            out(context, f"{me.id} tick{n} wr={get(st.wr)} c={get(st.c)}")
        st.wr = n
        if n < TICKS:
            after(TICK_MS, "tick")
        else:
            after(500, "check")
    elif m == "check":
        out(context, f"{me.id} check w={get(st.w)} wr={get(st.wr)} c={get(st.c)}")
    else:
        raise ValueError(f"unexpected message {m!r}")


# ---- scenario 3: messaging ----

@functions.bind(typename="remote/ping")
def ping(context, message):
    me = context.address
    m = message.as_string()
    out(context, f"ping {me.id} got {m} from {caller_string(context.caller)}")
    if m == "go":
        send(context, "remote/pong", me.id + "-p", "hello")
        send(context, "emb/echo", me.id + "-e", "to-emb")
        send(context, me.typename, me.id, "self")


@functions.bind(typename="remote/pong")
def pong(context, message):
    out(context, f"pong {context.address.id} got {message.as_string()} from {caller_string(context.caller)}")
    caller = context.caller
    if caller is not None:
        send(context, caller.typename, caller.id, "pong-reply")


# ---- scenario 4: delayed messages and cancellation ----

@functions.bind(typename="remote/delay")
def delay(context, message):
    me = context.address
    m = message.as_string()
    out(context, f"delay {me.id} got {m} from {caller_string(context.caller)}")

    def to(value):
        return message_builder(target_typename=me.typename, target_id=me.id, str_value=value)

    if m == "go":
        context.send_after(timedelta(0), to("zero"))
        context.send_after(timedelta(milliseconds=50), to("plain"))
        context.send_after(timedelta(milliseconds=100), to("a-cancelled"), cancellation_token="t-a")
        context.cancel_delayed_message("t-a")
        context.cancel_delayed_message("t-b")
        context.send_after(timedelta(milliseconds=100), to("b-kept"), cancellation_token="t-b")
        context.send_after(timedelta(seconds=3), to("c-cancelled"), cancellation_token="t-c")
        context.send_after(timedelta(milliseconds=30),
                           message_builder(target_typename="remote/pong", target_id=me.id + "-x",
                                           str_value="delayed-hello"),
                           cancellation_token="t-x")
        context.send_after(timedelta(seconds=2),
                           message_builder(target_typename="remote/pong", target_id=me.id + "-y", str_value="never"),
                           cancellation_token="t-y")
    elif m == "zero":
        context.cancel_delayed_message("t-y")
    elif m == "plain":
        context.cancel_delayed_message("t-c")
    elif m == "b-kept":
        context.send_after(timedelta(milliseconds=10), to("b-again"), cancellation_token="t-b")


# ---- scenario 5: egress ----

@functions.bind(typename="remote/egress")
def egress(context, message):
    me = context.address

    def eg(value, tpe):
        context.send_egress(egress_message_builder(target_typename="cf/out", value=value, value_type=tpe))

    eg(f"str-{me.id}-ü", StringType)
    eg(42, IntType)
    eg(0, IntType)
    eg(-7, LongType)
    eg(True, BoolType)
    eg(False, BoolType)
    eg(1.5, FloatType)
    eg(-2.25, DoubleType)
    eg({"n": 1, "last": me.id}, JSON_TYPE)
    context.send_egress(egress_message_builder(target_typename="cf/stdout", value=f"hello {me.id}",
                                               value_type=StringType))


# ---- scenario 6: batching ----

@functions.bind(typename="remote/seq", specs=[ValueSpec(name="last", type=LongType)])
def seq(context, message):
    last = context.storage.last
    if last is None:
        last = -1
    v = message.as_long()
    out(context, f"{context.address.id}:{last}>{v}")
    context.storage.last = v


# ---- greeter (CLI, transports) ----

@functions.bind(typename="remote/greet", specs=[ValueSpec(name="seen", type=IntType)])
def greet(context, message):
    seen = (context.storage.seen or 0) + 1
    context.storage.seen = seen
    out(context, f"{context.address.id}:{seen}")


handler = RequestReplyHandler(functions)


async def handle(request):
    body = await request.read()
    try:
        reply = await handler.handle_async(body)
    except Exception as e:  # the runtime sees a 500 with the reason
        return web.Response(status=500, text=f"{type(e).__name__}: {e}")
    return web.Response(body=reply, content_type="application/octet-stream")


async def exit_on_stdin_eof():
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.buffer.read)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--unix", default=None)
    p.add_argument("--tls-cert", default=None)
    p.add_argument("--tls-key", default=None)
    args = p.parse_args()

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ctx = None
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    if args.unix:
        site = web.UnixSite(runner, args.unix, ssl_context=ctx)
        await site.start()
        print("LISTENING unix", flush=True)
    else:
        site = web.TCPSite(runner, "127.0.0.1", args.port or 0, ssl_context=ctx)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        print(f"LISTENING {port}", flush=True)
    try:
        await exit_on_stdin_eof()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
