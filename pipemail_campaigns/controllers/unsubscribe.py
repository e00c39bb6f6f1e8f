"""The one-click unsubscribe route of group email copies (RFC 8058).

Anyone may call it, with anything in the path. The token is checked first (signed,
of the unsubscribe kind) by one model method; every token it cannot use, forged or
pointing at nothing, gets the same answer. A GET only shows a page with a button
(mail scanners follow every link); the POST, from that button or straight from a
mail client's "Unsubscribe" (``List-Unsubscribe=One-Click``), adds the address to
Odoo's blacklist. Doing it twice changes nothing.
"""

from werkzeug.wrappers import Response

from odoo import http
from odoo.http import request

NO_STORE = {
    "Cache-Control": "no-store, max-age=0",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class PipemailUnsubscribeController(http.Controller):
    def _page(self, template, values, status=200):
        html = str(request.env["ir.qweb"]._render(template, values)).strip()
        return Response(html, status=status, mimetype="text/html", headers=NO_STORE)

    def _miss(self):
        return self._page("pipemail_campaigns.unsubscribe_miss", {}, status=404)

    @http.route(
        "/pipemail/unsubscribe/<string:token>",
        type="http",
        auth="public",
        methods=["GET", "HEAD"],
        csrf=False,
        sitemap=False,
    )
    def pipemail_unsubscribe_page(self, token, **kwargs):
        email = request.env["pipemail.group.email.recipient"]._pipemail_unsubscribe(
            token, apply=False
        )
        if not email:
            return self._miss()
        return self._page(
            "pipemail_campaigns.unsubscribe_page",
            {"email": email, "action": request.httprequest.path, "done": False},
        )

    @http.route(
        "/pipemail/unsubscribe/<string:token>",
        type="http",
        auth="public",
        methods=["POST"],
        csrf=False,  # mail clients POST without a session (RFC 8058); the token is the key
        sitemap=False,
    )
    def pipemail_unsubscribe_post(self, token, **kwargs):
        email = request.env["pipemail.group.email.recipient"]._pipemail_unsubscribe(
            token, apply=True
        )
        if not email:
            return self._miss()
        return self._page(
            "pipemail_campaigns.unsubscribe_page",
            {"email": email, "action": request.httprequest.path, "done": True},
        )
