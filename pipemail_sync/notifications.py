"""The toast a button returns: one shape for every pipemail action."""


def notification(title, message, kind, *, close=False):
    """Client action showing ``message`` as a ``kind`` toast ("success", "warning",
    "danger"); ``close`` then closes the dialog the button sits in.

    Anything but a success stays until dismissed: it tells the user something to act on.
    """
    return {
        "type": "ir.actions.client",
        "tag": "display_notification",
        "params": {
            "title": title,
            "message": message,
            "type": kind,
            "sticky": kind != "success",
            "next": {"type": "ir.actions.act_window_close"} if close else False,
        },
    }
