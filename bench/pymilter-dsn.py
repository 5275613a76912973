#!/usr/bin/python3
"""pymilter's Milter.dsn.create_msg on a message file written by bench/lib/message-file.ts; prints JSON.

    /usr/bin/python3 bench/pymilter-dsn.py MESSAGES_FILE

For each original: parse it (create_msg needs the parsed message for its Subject), fill pymilter's
failure-style template and serialize the DSN: the work milterkit's createDsn does. One untimed pass first.
"""
import email
import json
import sys

from Milter import dsn

from message_file import read_messages, timed

TEMPLATE = """To: %(sender)s
From: postmaster@%(receiver)s
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied

This is the mail system at host %(receiver)s.

Your message could not be delivered to:
\t%(rcpt)s

Subject: %(subject)s
"""


class Vars:
    pass


def run(messages):
    made = errors = 0
    for raw in messages:
        v = Vars()
        v.sender = 'alice@example.com'
        v.receiver = 'mx.example.org'
        try:
            original = email.message_from_bytes(raw)
            msg = dsn.create_msg(v, ['bob@example.org'], original, TEMPLATE)
            msg.as_bytes()
            made += 1
        except Exception:  # e.g. a non-ASCII Subject: as_bytes() fails; counted, not fatal
            errors += 1
    return made, errors


def main():
    messages, _ = read_messages(sys.argv[1])
    seconds, (made, errors) = timed(run, messages)
    print(json.dumps({'seconds': seconds, 'messages': len(messages), 'made': made, 'errors': errors}))


if __name__ == '__main__':
    main()
