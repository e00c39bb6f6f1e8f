"""Every URL path the addon serves, written once: the routes are declared from these and
the links that point at them are built from the same constants."""

PIXEL_PATH = "/pipemail/t/o/"
"""Open pixel: ``PIXEL_PATH + <token> + ".gif"``."""
CLICK_PATH = "/pipemail/t/c/"
"""Click redirect: ``CLICK_PATH + <token>``."""
OAUTH_START = "/pipemail/oauth/{provider}/start"
"""Where a user's browser starts the OAuth sign-in of a mailbox (``?account_id=``)."""
OAUTH_CALLBACK = "/pipemail/oauth/callback"
"""The redirect URI registered with Google and Microsoft."""
