"""moto's server answers cross-origin requests from any origin (flask-cors on every backend): a web page open
while `loopline local up` runs could write objects into the local bucket. AWS clients never send an `Origin`
header; browsers always do on cross-origin requests, so the local AWS endpoint refuses every request that carries
one, preflight included, and never sends `Access-Control-*` headers. A page can also rebind its own DNS name to
127.0.0.1 (then its requests are same-origin): every request whose Host header does not name this machine
(`local_access.is_local_host`) is refused too."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from loopline.emulator.local_access import is_local_host

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

FORBIDDEN_BODY = (
    b'{"message": "cross-origin requests are refused by the local AWS emulator; use an AWS SDK or CLI"}'
)
FOREIGN_HOST_BODY = b'{"message": "the local AWS emulator answers only Host 127.0.0.1 or localhost"}'


class RefuseBrowserOrigins:
    """WSGI middleware: 403 for any request with an `Origin` header or a Host that is not this machine; strips
    CORS headers from every answer."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        refused = FORBIDDEN_BODY if environ.get("HTTP_ORIGIN") else \
            None if is_local_host(environ.get("HTTP_HOST")) else FOREIGN_HOST_BODY
        if refused is not None:
            start_response("403 Forbidden", [("Content-Type", "application/json"),
                                             ("Content-Length", str(len(refused)))])
            return [refused]

        def without_cors(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            kept = [(name, value) for name, value in headers if not name.lower().startswith("access-control-")]
            return start_response(status, kept, *args)

        return self.app(environ, without_cors)


class SameOriginMotoServer(ThreadedMotoServer):
    """moto's threaded server with `RefuseBrowserOrigins` around its application."""

    def _server_entry(self) -> None:
        app = RefuseBrowserOrigins(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()
