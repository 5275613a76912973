#!/usr/bin/python3
"""pymilter's Milter.dsn.create_msg on a message file written by bench/lib/message-file.ts; prints JSON.

    /usr/bin/python3 bench/pymilter-dsn.py MESSAGES_FILE

For each original: parse it (create_msg needs the parsed message for its Subject), fill pymilter's
failure-style template and serialize the DSN: the work milterkit's createDsn does. One untimed pass first.
"""
import email
import json
import sys
import time

from Milter import dsn

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
    path = sys.argv[1]
    with open(path, 'rb') as f:
        data = f.read()
    with open(path + '.lengths.json') as f:
        lengths = json.load(f)
    messages, offset = [], 0
    for n in lengths:
        messages.append(data[offset:offset + n])
        offset += n
    run(messages)
    start = time.perf_counter()
    made, errors = run(messages)
    print(json.dumps({'seconds': time.perf_counter() - start, 'messages': len(messages), 'made': made, 'errors': errors}))


if __name__ == '__main__':
    main()
