"""Is a valid new config still a plausible one to reload into?

A truncated file is the most common bad deploy: it parses, validates, and monitors nothing (no
targets), judges nothing (no services) or locks every operator out (no auth section: every token and
login stops working). A reload that would drop all of one of these is refused unless asked for
explicitly (`POST /-/reload?allow_empty=1`); a restart with such a file is always deliberate.
"""

from __future__ import annotations

from monitor.config.response_model import Auth
from monitor.core.inventory import Inventory

ALLOW_HINT = "to apply it anyway, POST /-/reload?allow_empty=1"


def _credentials(auth: Auth) -> int:
    return len(auth.tokens) + len(auth.users) + (auth.proxy is not None)


def drops_everything(running: Inventory, new: Inventory) -> list[str]:
    """What the new config would drop entirely, one sentence each; empty when the reload is plausible.
    Both inventories are the whole config's (before sharding: one shard may own no target at all)."""
    problems: list[str] = []
    if running.targets and not new.targets:
        problems.append(f"it has no targets (the running config monitors {len(running.targets)})")
    if running.services and not new.services:
        problems.append(f"it has no services (the running config has {len(running.services)})")
    old_auth, new_auth = running.response.auth, new.response.auth
    if _credentials(old_auth) and not _credentials(new_auth):
        problems.append(
            f"it has no auth tokens, users or proxy (the running config has {len(old_auth.tokens)} tokens and "
            f"{len(old_auth.users)} users: every one would stop working)"
        )
    return problems
