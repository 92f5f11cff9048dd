"""Acknowledge by replying to a mail page: parse the reply, match it to its page, act (monitor.replies.desk)."""
