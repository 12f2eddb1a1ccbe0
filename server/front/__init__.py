"""The HTTP front of ``pregbridge serve``: whole requests read under deadlines before a worker runs one.

Why a front of our own. gunicorn's sync worker reads a request inside the one process that runs the
app: two clients sending a byte every two seconds held both workers of the default ``serve`` (PREG, AR,
Filematch and /health all stopped) until gunicorn killed them after 60 s. The alternatives on PyPI were
weighed against keeping pre-forked processes (threads measured 2–4× slower for spyne and lxml under the
GIL) and gunicorn's hooks (the audit flush and the Filematch washers' stop at worker exit, the app and
its engine built after the fork):

* gunicorn's ``gthread`` worker waits for a connection's *first* bytes outside its threads, then reads the
  rest inside one: a slow client still holds a thread, and it measured slower here than ``sync``;
  ``gevent``/``eventlet`` monkey-patch the washers' threads and the database drivers; gunicorn's
  ``tornado`` worker has no header deadline it lets us set and no per-address cap;
* waitress buffers whole requests with a connection limit, but serves from threads in one process;
  uvicorn, hypercorn and gunicorn's ``asgi`` worker serve ASGI: a WSGI app behind them runs in a thread
  pool that reads the body as it arrives (a2wsgi), or loses gunicorn's hooks (hypercorn's own workers).

So each gunicorn worker process (:class:`server.front.worker.FrontWorker`) runs an asyncio event loop
that reads requests with h11 (python-hyper's sans-I/O HTTP/1.1 parser, the one httpx and uvicorn use)
under a header deadline, a body deadline with a minimum rate, a connection cap and a per-address cap,
and only then runs the WSGI app on the whole request, synchronously, as the sync worker did
(:mod:`server.front.connection`). Refusals answer in the request's form (:mod:`server.front.answers`).
Connections are kept alive between requests (the sync worker closed each one).
"""

from server.front.front import Front
from server.front.worker import FrontWorker

__all__ = ["Front", "FrontWorker"]
