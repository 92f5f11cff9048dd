"""Telling the governments what is happening: the public status page, notices (お知らせ) and the
subscribers they are mailed to."""
