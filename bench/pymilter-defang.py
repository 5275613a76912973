#!/usr/bin/python3
"""pymilter's mime.defang on a message file written by bench/lib/message-file.ts; prints one JSON line.

    /usr/bin/python3 bench/pymilter-defang.py MESSAGES_FILE

Each message is parsed with mime.message_from_file, defanged with scan_zip (pymilter's most thorough
setting), and written back with as_bytes() when it was modified: the same work milterkit's defang does.
One untimed pass first, as for every case of the benchmark.
"""
import json
import sys
from io import BytesIO

import mime

from message_file import read_messages, timed

mime.print = lambda *a, **k: None  # check_attachments has leftover debug prints


def run(messages):
    changed = errors = 0
    for raw in messages:
        try:
            msg = mime.message_from_file(BytesIO(raw))
            if mime.defang(msg, scan_zip=True):
                msg.as_bytes()
                changed += 1
        except Exception:  # pymilter crashes on some inputs (see the research note): counted, not fatal
            errors += 1
    return changed, errors


def main():
    messages, size = read_messages(sys.argv[1])
    seconds, (changed, errors) = timed(run, messages)
    print(json.dumps({'seconds': seconds, 'messages': len(messages), 'bytes': size, 'changed': changed, 'errors': errors}))


if __name__ == '__main__':
    main()
