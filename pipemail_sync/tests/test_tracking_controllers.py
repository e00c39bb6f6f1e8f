"""The public tracking routes through real HTTP (RELIABILITY.md tests 15 and 16).

A good token records one event; every other token (forged, unknown, of the other
kind, of an email not sent or not tracked, garbage, too long) gets the very same
response as any miss and moves no counter. HEAD records nothing. The click target
is the stored link, re-checked, whatever the request says. Machine hits are kept
and labelled, left out of the counts, and never trigger the first-open notification.
"""

import email
import email.policy
import random
import re
import string
from datetime import timedelta
from urllib.parse import urlsplit

from odoo import Command, fields
from odoo.tests import HttpCase, new_test_user, tagged

from pipemail import tracking as pm_tracking

from .common import TEST_SECRET_KEY, set_class_config

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IGNORED_HEADERS = {"date", "server"}


def shape(response):
    """What a prober can compare between two answers."""
    headers = sorted(
        (k.lower(), v) for k, v in response.headers.items() if k.lower() not in IGNORED_HEADERS
    )
    return response.status_code, response.content, headers


@tagged("post_install", "-at_install")
class TestTrackingControllers(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        set_class_config(cls, pipemail_secret_key=TEST_SECRET_KEY)
        cls.env["ir.config_parameter"].sudo().set_param("pipemail.allow_private_hosts", "1")
        company = cls.env.company
        cls.sender = new_test_user(
            cls.env,
            "pm_tracker",
            name="Tess Tracker",
            email="tess@ourco.example",
            groups="sales_team.group_sale_salesman",
            notification_type="inbox",
            company_id=company.id,
            company_ids=[Command.set(company.ids)],
        )
        cls.account = cls.env["pipemail.account"].create(
            {
                "name": "Tess",
                "email": "tess@ourco.example",
                "imap_host": "127.0.0.1",
                "smtp_host": "127.0.0.1",
                "user_id": cls.sender.id,
            }
        )
        cls.Event = cls.env["pipemail.tracking.event"].sudo()
        cls.outbox = cls._sent_outbox(
            '<p>Hello, see <a href="https://shop.example.com/a">A</a>, '
            '<a href="https://shop.example.com/b?q=1&amp;r=2">B</a>, '
            '<a href="https://docs.example.org/c">C</a> and '
            '<a href="mailto:help@ourco.example">mail us</a>.</p>'
        )
        cls.pixel, cls.clicks = cls._paths(cls.outbox)

    @classmethod
    def _sent_outbox(cls, body, subject="Our offer", email_to="Carla <carla@customer.example>"):
        """An email as it is after a successful send (no SMTP needed for tracking)."""
        wizard = (
            cls.env["pipemail.compose"]
            .with_user(cls.sender)
            .create({"email_to": email_to, "subject": subject, "body": body, "tracking": True})
        )
        outbox = wizard._pipemail_create_outbox().sudo()
        outbox.write({"state": "sent", "sent_date": fields.Datetime.now() - timedelta(hours=1)})
        outbox._pipemail_create_sent_message()
        return outbox

    @classmethod
    def _paths(cls, outbox):
        """The pixel path and {link index: click path} found in the bytes as sent."""
        message = email.message_from_bytes(outbox._pipemail_raw(), policy=email.policy.default)
        raw = message.get_body(("html",)).get_content()
        pixel = urlsplit(re.search(r'src="([^"]+/pipemail/t/o/[^"]+)"', raw).group(1)).path
        clicks = {}
        for url in re.findall(r'href="([^"]+/pipemail/t/c/[^"]+)"', raw):
            path = urlsplit(url).path
            ref = cls.Event._pipemail_verify(pm_tracking.KIND_CLICK, path.rsplit("/", 1)[1])
            clicks[ref.link] = path
        return pixel, clicks

    def setUp(self):
        super().setUp()
        # every test starts from a fresh log and a "not notified yet" email
        self.Event.search([("outbox_id.user_id", "=", self.sender.id)]).unlink()
        self.outbox.first_open_notified = False
        last = self.env["bus.bus"].sudo().search([], order="id desc", limit=1)
        self.bus_start = last.id or 0

    # ------------------------------------------------------------------ helpers

    def get(self, path, ua=FIREFOX, head=False, **kwargs):
        return self.url_open(
            path, headers={"User-Agent": ua}, allow_redirects=False, head=head, **kwargs
        )

    def events(self, outbox=None, **domain):
        extra = [(k, "=", v) for k, v in domain.items()]
        return self.Event.search([("outbox_id", "=", (outbox or self.outbox).id)] + extra)

    def token(self, kind, message, link=None):
        ref = pm_tracking.TrackingRef(message=message, link=link)
        return self.Event._pipemail_sign(kind, ref)

    def notifications(self):
        return self.env["mail.notification"].search(
            [
                ("res_partner_id", "=", self.sender.partner_id.id),
                ("mail_message_id.model", "=", "pipemail.outbox"),
                ("mail_message_id.res_id", "=", self.outbox.id),
            ]
        )

    def bus_notices(self):
        return (
            self.env["bus.bus"]
            .sudo()
            .search([("id", ">", self.bus_start), ("message", "ilike", "Email opened")])
        )

    # ------------------------------------------------------------------ the pixel

    def test_pixel_counts_a_human_open_and_notifies_once(self):
        self.assertEqual(len(self.clicks), 3, "http links rewritten, mailto left alone")
        # written on the first try: an auth="none" route gets a read-only cursor unless
        # told otherwise, and Odoo would then fail the INSERT and run the hit again
        with self.assertNoLogs("odoo.sql_db", level="ERROR"):
            response = self.get(self.pixel)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.headers["Content-Type"], "image/gif")
        self.assertTrue(response.content.startswith(b"GIF89a"))
        self.assertIn("no-store", response.headers["Cache-Control"])
        self.assertNotIn("Set-Cookie", response.headers)
        [event] = self.events()
        self.assertEqual(event.kind, "open")
        self.assertFalse(event.is_machine, event.machine_reason)
        self.assertEqual(event.user_agent, FIREFOX)
        self.assertTrue(event.ip_hash and "127.0.0.1" not in event.ip_hash)
        message = self.outbox.sent_message_id
        message.invalidate_recordset()
        self.assertEqual(message.pipemail_open_count, 1)
        self.assertTrue(message.pipemail_first_open)
        self.assertEqual(message.thread_id.pipemail_open_count, 1)
        self.assertIn(
            message.thread_id, self.env["pipemail.thread"].search([("pipemail_open_count", ">", 0)])
        )
        self.assertEqual(len(self.bus_notices()), 1, "a live notification, at once")
        # the inbox notification is left to a cron the hit triggers (the pixel stays cheap)
        self.assertFalse(self.notifications())
        cron = self.env.ref("pipemail_sync.ir_cron_pipemail_first_open")
        self.assertTrue(self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)]))
        self.outbox.invalidate_recordset()
        self.assertTrue(self.outbox.first_open_notice_pending)
        self.env["pipemail.outbox"]._cron_first_open_notices()
        self.assertEqual(len(self.notifications()), 1, "an inbox notification")
        self.assertFalse(self.outbox.first_open_notice_pending)
        self.env["pipemail.outbox"]._cron_first_open_notices()
        self.assertEqual(len(self.notifications()), 1, "posted once")

        self.get(self.pixel)
        self.get(self.pixel)
        message.invalidate_recordset()
        # three fetches within two seconds: the third is a burst, not a reader
        self.assertEqual(message.pipemail_open_count, 2)
        self.assertEqual(message.pipemail_machine_count, 1)
        self.env["pipemail.outbox"]._cron_first_open_notices()
        self.assertEqual(len(self.notifications()), 1, "the first open only")
        self.assertEqual(len(self.bus_notices()), 1)

    def test_bad_and_unknown_tokens_answer_like_a_hit_and_move_nothing(self):
        reference = shape(self.get(self.pixel))
        self.assertEqual(len(self.events()), 1)
        good = self.pixel.rsplit("/", 1)[1][: -len(".gif")]
        ident, mac = good.split(".")
        flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
        unsent = self._sent_outbox("<p>x</p>", subject="Draft")
        unsent.write({"state": "failed", "sent_date": False})
        untracked = self._sent_outbox("<p>x</p>", subject="Untracked")
        untracked.tracking = False
        probes = [
            f"{ident}.{flipped}",  # forged signature
            f"{ident}.",  # no signature
            f"{ident}.{mac}x",  # longer signature
            self.token(pm_tracking.KIND_OPEN, 999999999),  # unknown email
            self.token(pm_tracking.KIND_CLICK, self.outbox.id, 0),  # the other kind
            self.token(pm_tracking.KIND_OPEN, unsent.id),  # not sent
            self.token(pm_tracking.KIND_OPEN, untracked.id),  # not tracked
            "x" * 600,  # too long
            "%00",
            pm_tracking.sign(b"another database's secret key", "open", f"msg:{self.outbox.id}"),
        ]
        rng = random.Random(15)
        alphabet = string.ascii_letters + string.digits + "-_."
        probes += [
            "".join(rng.choice(alphabet) for _i in range(rng.randint(1, 120))) for _i in range(200)
        ]
        for token in probes:
            for ua in (FIREFOX, "", "Mozilla/5.0 (compatible; Barracuda)"):
                self.assertEqual(
                    shape(self.get(f"/pipemail/t/o/{token}.gif", ua=ua)), reference, token
                )
        self.assertEqual(len(self.events()), 1, "no counter moved")
        self.assertFalse(self.events(unsent) | self.events(untracked))

    def test_head_changes_nothing(self):
        head = self.get(self.pixel, head=True)
        self.assertEqual(head.status_code, 200)
        self.assertEqual(head.headers["Content-Type"], "image/gif")
        click = self.get(self.clicks[0], head=True)
        self.assertEqual(click.status_code, 302)
        self.assertEqual(click.headers["Location"], "https://shop.example.com/a")
        self.assertFalse(self.events())
        self.assertFalse(self.outbox.first_open_notified)
        self.assertFalse(self.notifications())

    # ------------------------------------------------------------------ machines

    def test_machine_opens_are_labelled_and_not_counted(self):
        cases = [
            ("Mozilla/5.0 (compatible; Barracuda Sentinel)", "Barracuda"),
            ("Mozilla/5.0", "Apple Mail Privacy Protection"),
            (
                "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
                "(via ggpht.com GoogleImageProxy)",
                "Gmail",
            ),
            ("python-requests/2.31", "automated program"),
            ("", "No mail app"),
        ]
        for ua, reason in cases:
            self.get(self.pixel, ua=ua)
            event = self.events()[:1]
            self.assertTrue(event.is_machine, ua)
            self.assertIn(reason, event.machine_reason)
        message = self.outbox.sent_message_id
        message.invalidate_recordset()
        self.assertEqual(message.pipemail_open_count, 0)
        self.assertEqual(message.pipemail_machine_count, len(cases))
        self.assertFalse(self.notifications(), "machines never notify")
        self.assertFalse(self.bus_notices())

    def test_instant_and_burst_hits_are_machines(self):
        self.outbox.sent_date = fields.Datetime.now()
        self.get(self.pixel)
        self.assertIn("after sending", self.events().machine_reason)
        self.outbox.sent_date = fields.Datetime.now() - timedelta(hours=1)
        self.Event.search([("outbox_id.user_id", "=", self.sender.id)]).unlink()
        for _i in range(3):
            self.get(self.pixel)
        self.assertEqual(self.events().sorted("id").mapped("is_machine"), [False, False, True])
        self.assertIn("within 2 seconds", self.events(is_machine=True).machine_reason)

    def test_crm_sessions_are_not_opens(self):
        self.authenticate(self.sender.login, self.sender.login)
        self.get(self.pixel)
        event = self.events()
        self.assertTrue(event.is_machine)
        self.assertIn("sender opened it in their own session", event.machine_reason)
        # a colleague reading a reply that quotes the email, inside the CRM
        colleague = new_test_user(self.env, "pm_colleague", groups="sales_team.group_sale_salesman")
        self.authenticate(colleague.login, colleague.login)
        self.get(self.pixel)
        event = self.events()[:1]
        self.assertTrue(event.is_machine)
        self.assertIn("signed in to the CRM", event.machine_reason)
        self.assertFalse(self.notifications())

    # ------------------------------------------------------------------ clicks

    def test_click_goes_to_the_stored_target_only(self):
        response = self.get(self.clicks[1] + "?url=https://evil.example/&next=//evil.example")
        self.assertEqual(response.status_code, 302)
        self.assertEqual(response.headers["Location"], "https://shop.example.com/b?q=1&r=2")
        self.assertIn("no-store", response.headers["Cache-Control"])
        [event] = self.events()
        self.assertEqual((event.kind, event.link_index), ("click", 1))
        self.assertEqual(event.url, "https://shop.example.com/b?q=1&r=2")
        self.assertFalse(event.is_machine)
        message = self.outbox.sent_message_id
        message.invalidate_recordset()
        self.assertEqual(message.pipemail_click_count, 1)
        self.assertEqual(
            self.outbox.link_ids.filtered(lambda link: link.link_index == 1).click_count, 1
        )

    def test_click_misses_are_identical_and_never_redirect(self):
        miss = self.get("/pipemail/t/c/" + self.token(pm_tracking.KIND_CLICK, 999999999, 0))
        self.assertEqual(miss.status_code, 404)
        self.assertNotIn("Location", miss.headers)
        reference = shape(miss)
        good = self.clicks[0].rsplit("/", 1)[1]
        ident, mac = good.split(".")
        probes = [
            f"{ident}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
            self.token(pm_tracking.KIND_OPEN, self.outbox.id),  # a pixel token
            self.token(pm_tracking.KIND_CLICK, self.outbox.id),  # no link index
            self.token(pm_tracking.KIND_CLICK, self.outbox.id, 77),  # no such link
            "x" * 600,
        ]
        for token in probes:
            self.assertEqual(shape(self.get(f"/pipemail/t/c/{token}")), reference, token)
        self.assertFalse(self.events())

    def test_open_redirect_vectors(self):
        """RELIABILITY 16: only stored targets, no header injection, off-list = 0."""
        host = urlsplit(self.base_url()).hostname
        path_vectors = [
            "//evil.example",
            "/\\evil.example",
            "https:evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "%2F%2Fevil.example",
            "%5Cevil.example",
            "x%0d%0aLocation:%20https://evil.example",
            "x%0d%0aSet-Cookie:%20pmx=1",
            "x\r\nSet-Cookie: pmx=1",
        ]
        off_list = 0
        for vector in path_vectors:
            try:
                response = self.get("/pipemail/t/c/" + vector)
            except ValueError:  # the HTTP client refuses to send a raw CR/LF itself
                continue
            location = response.headers.get("Location", "")
            if location and urlsplit(location).hostname not in (None, host):
                off_list += 1
            self.assertNotIn("pmx", response.headers.get("Set-Cookie", ""), vector)
        self.assertEqual(off_list, 0)

        # stored targets that are no longer acceptable are not followed either
        Link = self.env["pipemail.tracking.link"].sudo()
        bad_targets = [
            "//evil.example/x",
            "/\\evil.example",
            "https:evil.example",
            "javascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "https://shop.example.com/\r\nSet-Cookie: pmx=1",
            "https://good.example@evil.example/",
            "https://evil\u3002example/",
        ]
        miss = shape(self.get("/pipemail/t/c/" + self.token("click", 999999999, 0)))
        for index, url in enumerate(bad_targets, start=50):
            Link.create({"outbox_id": self.outbox.id, "link_index": index, "url": url})
            response = self.get("/pipemail/t/c/" + self.token("click", self.outbox.id, index))
            self.assertEqual(shape(response), miss, url)
        self.assertFalse(self.events())

    def test_scanner_following_every_link_is_labelled(self):
        for index in (0, 1, 2):
            self.assertEqual(self.get(self.clicks[index]).status_code, 302)
        labels = self.events().sorted("id").mapped("is_machine")
        self.assertEqual(labels, [False, False, True])
        self.assertIn("different links", self.events(is_machine=True).machine_reason)

    def test_unsafe_links_are_never_tracked(self):
        outbox = self._sent_outbox(
            '<p><a href="//evil.example/x">a</a> <a href="/\\evil.example">b</a> '
            '<a href="https:evil.example">c</a> <a href="javascript:alert(1)">d</a> '
            '<a href="data:text/html,x">e</a> <a href="#top">f</a> '
            '<a href="tel:+3212">g</a> <a href="https://good.example/ok">h</a></p>',
            subject="Vectors",
        )
        self.assertEqual(outbox.link_ids.mapped("url"), ["https://good.example/ok"])
        raw = outbox._pipemail_raw().decode()
        self.assertNotIn("javascript:", raw)
        self.assertNotIn("data:text/html", raw)

    def test_notification_escapes_subject_and_names(self):
        """RELIABILITY 17 for what tracking writes: the inbox notification."""
        vector = '<img src=x onerror="window.top.__pmx=1"><script>window.top.__pmx=1</script>'
        outbox = self._sent_outbox(
            "<p>x</p>",
            subject=f"Offer {vector}",
            email_to='"Eve <script>alert(1)</script>" <eve@customer.example>',
        )
        pixel, _clicks = self._paths(outbox)
        self.get(pixel)
        self.env["pipemail.outbox"]._cron_first_open_notices()
        message = self.env["mail.message"].search(
            [("model", "=", "pipemail.outbox"), ("res_id", "=", outbox.id)]
        )
        self.assertEqual(len(message), 1)
        body = str(message.body)
        self.assertIn("&lt;script&gt;", body)
        self.assertNotIn("<script", body)
        self.assertNotIn("<img", body)
        self.assertEqual(message.subject, f"Opened: Offer {vector}", "a plain-text field")
