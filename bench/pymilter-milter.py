#!/usr/bin/python3
"""A pymilter (python3-milter) milter doing the daemon benchmark's baseline work: buffer the message,
parse it with pymilter's mime module, check attachment names, replace the body if anything changed, and
add a header to every message. milterkit's daemon does at least as much (the whole defang engine).

    /usr/bin/python3 bench/pymilter-milter.py unix:/path/to/socket | inet:PORT@127.0.0.1
"""
import io
import os
import sys

import Milter
import mime


class BaselineMilter(Milter.Base):
    def envfrom(self, sender, *args):
        self.buffer = io.BytesIO()
        return Milter.CONTINUE

    @Milter.noreply
    def header(self, name, value):
        self.buffer.write(name.encode('latin1', 'replace') + b': ' + value.encode('utf-8', 'surrogateescape') + b'\r\n')
        return Milter.CONTINUE

    @Milter.noreply
    def eoh(self):
        self.buffer.write(b'\r\n')
        return Milter.CONTINUE

    @Milter.noreply
    def body(self, chunk):
        self.buffer.write(chunk)
        return Milter.CONTINUE

    def eom(self):
        self.buffer.seek(0)
        message = mime.message_from_file(self.buffer)
        mime.check_attachments(message, mime.check_name)
        if message.ismodified():
            out = io.BytesIO()
            message.dump(out)
            self.replacebody(out.getvalue().split(b'\n\n', 1)[-1])
        self.addheader('X-Bench', 'changed' if message.ismodified() else 'clean')
        return Milter.ACCEPT


if __name__ == '__main__':
    os.umask(0)  # the socket must be reachable by Postfix's user
    mime.print = lambda *a, **k: None  # check_attachments has leftover debug prints
    Milter.factory = BaselineMilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGBODY)
    Milter.runmilter('bench', sys.argv[1], 600)
