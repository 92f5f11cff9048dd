"""A real IMAP server for the reply poller's tests: Dovecot (Debian package dovecot-imapd) with a config of its
own in a temp directory, one mailbox user, plain login on a loopback port; stopped at the end. Mail is put
into the mailbox with IMAP APPEND, as the site's mail system would deliver it."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.peers import free_port

USER, PASSWORD = "noc@monitor.example.lg.jp", "imap-test-password-5521"


def dovecot_usable() -> str | None:
    """Why the peer cannot run here, or None."""
    if shutil.which("dovecot") is None:
        return "dovecot (Debian package dovecot-imapd) not installed"
    if os.geteuid() != 0:
        return "dovecot runs its mail processes as the dovecot user: needs root"
    try:
        pwd.getpwnam("dovecot")
    except KeyError:
        return "no dovecot user (the package creates it)"
    return None


@contextmanager
def dovecot() -> Iterator[int]:
    """Yields the IMAP port."""
    # its own directory right under /tmp: dovecot's auth and mail processes (as the dovecot user) must reach
    # it, and pytest's tmp_path sits below a directory only root may enter
    root = Path(tempfile.mkdtemp(prefix="dovecot-"))
    root.chmod(0o755)
    for sub in ("run", "state", "mail"):
        (root / sub).mkdir()
    owner = pwd.getpwnam("dovecot")
    os.chown(root / "mail", owner.pw_uid, owner.pw_gid)
    port = free_port()
    (root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    config = root / "dovecot.conf"
    config.write_text(f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
""")
    # (dovecot daemonizes: its children would hold captured pipes open, so its output goes to its log only)
    subprocess.run(["dovecot", "-c", str(config)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not (root / "run" / "master.pid").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("dovecot did not start: " + (root / "dovecot.log").read_text()[-2000:])
            time.sleep(0.05)
        yield port
    finally:
        subprocess.run(
            ["doveadm", "-c", str(config), "stop"], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        shutil.rmtree(root, ignore_errors=True)
