"""Push (IDLE) watchers: wake the sync cron within seconds of new mail."""


def ensure_watchers(env):
    return None
