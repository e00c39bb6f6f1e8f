"""What a user may write, and which names a user may see: the checks every pipemail
model runs on the values a caller sends.

Access rights and record rules say which *rows* a user may create or change; they
say nothing about the *values*. Over JSON-RPC a caller sends whatever they like: a
``readonly`` field is only a hint to the web client, and a many2one is an id the
caller chose. So each model that users may write names the fields they may set
(:func:`check_values`), every id those fields pick must point at a record the caller
can read (:func:`check_targets`), and everything else (states, keys, server
locations, the links between internal rows) is written by server code after it
checked the caller, with a narrow ``sudo()``.

Names: Odoo 18 computes the display name of a many2one value as superuser (see
``fields.Many2one.convert_to_read`` and ``web_read``), so a row a user can read would
name a record they cannot. :func:`hide_unreadable_names` is called at the end of the
``_compute_display_name`` of every pipemail model to put a neutral label in its place.
"""

from odoo import SUPERUSER_ID
from odoo.exceptions import AccessError
from odoo.fields import Command


def referenced_ids(field, value):
    """Ids of existing records that ``value`` (as sent to create/write) makes ``field``
    point at. Commands that create or update co-records go through the co-model's own
    create/write, as the same user, and are checked there."""
    if field.type == "many2one" or field.type == "many2one_reference":
        if isinstance(value, int) and value:
            return [value]
        return []
    ids = []
    for command in value or ():
        if isinstance(command, int):
            ids.append(command)
            continue
        if not isinstance(command, list | tuple) or not command:
            continue
        code = command[0]
        if code in (Command.LINK, Command.UPDATE) and len(command) > 1:
            ids.append(command[1])
        elif code == Command.SET and len(command) > 2:
            ids.extend(command[2] or ())
    return [id_ for id_ in ids if isinstance(id_, int) and id_]


def check_values(records, vals, writable, what=None):
    """Refuse any field of ``vals`` that a user may not set on ``records``' model.

    Superuser code (the sync, the outbox, crons, the checked server methods) passes.
    """
    if records.env.su:
        return
    refused = sorted(set(vals) - set(writable))
    if refused:
        fields = records._fields
        labels = ", ".join(fields[f].string if f in fields else f for f in refused)
        raise AccessError(
            records.env._(
                "%(what)s: these values are set by the server, not by hand: %(fields)s.",
                what=what or records._description,
                fields=labels,
            )
        )
    check_targets(records, vals)


def check_targets(records, vals):
    """Every record a relational value of ``vals`` picks must exist and be readable by
    the caller (for pipemail records: through the visibility rules)."""
    env = records.env
    if env.su:
        return
    for fname, value in vals.items():
        field = records._fields.get(fname)
        if field is None or not field.relational:
            continue
        ids = referenced_ids(field, value)
        if not ids:
            continue
        targets = env[field.comodel_name].browse(ids)
        found = targets.with_context(active_test=False).exists()
        if len(found) != len(set(ids)) or not _readable(found):
            # one answer for "missing" and "not yours": ids are no oracle
            raise AccessError(
                env._(
                    "%(field)s: you cannot use that record (it does not exist, or you may "
                    "not see it).",
                    field=field.string,
                )
            )


def _readable(records) -> bool:
    """Whether the caller may read all of ``records``. An attachment's own access rights
    say nothing of the record it belongs to (a sent email's raw MIME, a Private email's
    file): Odoo decides that in ``ir.attachment.check``, which only its read calls."""
    if not records.has_access("read"):
        return False
    if records._name == "ir.attachment":
        try:
            records.check("read")
        except AccessError:
            return False
    return True


def hide_unreadable_names(records, label):
    """Replace the display name of the records of ``records`` the real user cannot read.

    Only acts when names are computed as superuser on behalf of a user (a many2one read
    by the web client, a related field): then ``env.uid`` is still the user's. Names
    computed as the user are already protected by the access check of the fields they
    read.
    """
    env = records.env
    if not env.su or not env.uid or env.uid == SUPERUSER_ID:
        return
    stored = records.browse(id_ for id_ in records._ids if isinstance(id_, int))
    if not stored:
        return
    as_user = stored.with_user(env.uid).with_context(active_test=False)
    readable = set(as_user.exists()._filtered_access("read").ids)
    for record in stored:
        if record.id not in readable:
            record.display_name = label
