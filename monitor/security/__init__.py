"""The disconnect playbook (接続遮断): detect unauthorized traffic on an LGWAN connection, page the
security team, cut the connection after approval, verify, and reconnect the same way."""
