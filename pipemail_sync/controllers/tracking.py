"""Public tracking routes: the open pixel and the click redirect.

Anyone on the Internet can call them, with anything in the path. Each route calls
one model method (``pipemail.tracking.event._pipemail_track``) that checks the
signed token before reading a row, and answers every miss (forged, unknown,
cancelled, untracked, a link whose stored target is no longer acceptable) with the
same bytes and headers as any other miss: nothing to learn from probing. The click
target comes from the database, never from the request.

``auth="none"``: a hit needs no user (the model method sudoes narrowly after the
token check), and skipping the public-user lookup takes one query and a fifth of
the time off every hit. ``readonly=False`` because a hit writes its event
(``auth="none"`` routes default to a read-only cursor).
"""

import base64

from werkzeug.wrappers import Response

from odoo import http
from odoo.http import request

from ..engine import tracking as pm_tracking
from ..routes import CLICK_PATH, PIXEL_PATH

PIXEL = base64.b64decode(b"R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
NO_STORE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
MISS_BODY = (
    b"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Link unavailable</title></head>"
    b"<body><p>This link is not available.</p></body></html>"
)


def _pixel():
    return Response(PIXEL, status=200, mimetype="image/gif", headers=NO_STORE)


def _miss():
    return Response(MISS_BODY, status=404, mimetype="text/html", headers=NO_STORE)


def _client():
    http_request = request.httprequest
    return {
        "method": http_request.method,
        "user_agent": (http_request.headers.get("User-Agent") or "")[:1000],
        "ip": http_request.remote_addr or "",
        "session_uid": request.session.uid,
    }


class PipemailTrackingController(http.Controller):
    @http.route(
        PIXEL_PATH + "<string:token>.gif",
        type="http",
        auth="none",
        readonly=False,
        methods=["GET", "HEAD"],
        csrf=False,
        save_session=False,
    )
    def pipemail_open(self, token, **kwargs):
        request.env["pipemail.tracking.event"]._pipemail_track(
            pm_tracking.KIND_OPEN, token, **_client()
        )
        # the same image whatever happened: a probe cannot tell a hit from a miss
        return _pixel()

    @http.route(
        CLICK_PATH + "<string:token>",
        type="http",
        auth="none",
        readonly=False,
        methods=["GET", "HEAD"],
        csrf=False,
        save_session=False,
    )
    def pipemail_click(self, token, **kwargs):
        target = request.env["pipemail.tracking.event"]._pipemail_track(
            pm_tracking.KIND_CLICK, token, **_client()
        )
        if not isinstance(target, str):
            return _miss()
        response = Response(status=302, headers=NO_STORE)
        # already normalized by safe_redirect_target: absolute http(s), no CR/LF, no
        # user-info, percent-encoded; set as is (werkzeug would re-resolve a relative one)
        response.headers["Location"] = target
        response.autocorrect_location_header = False
        return response
