#!/usr/bin/env python3
"""A real SMTP server for the digest e-mail tests: aiosmtpd (Debian's python3-aiosmtpd) on a loopback
address, optionally with STARTTLS (required) and AUTH PLAIN/LOGIN (required, over TLS only). Every
message it accepts is written to OUTDIR as msgNNN.eml (the raw message) and msgNNN.json (envelope,
whether TLS and AUTH were used, and the message as Python's email package decodes it: headers, the
MIME tree as a list of content types in walk order (containers included, indented two spaces a
level), and each leaf part's type, file name and decoded text). Prints READY once it accepts connections; exits when its stdin
closes or after --lifetime seconds, whichever comes first.

usage: smtp_server.py --listen HOST:PORT --outdir DIR [--cert PEM --key PEM] [--user U --password P]
"""
import argparse
import email
import email.policy
import json
import os
import ssl
import sys
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Saver:
    def __init__(self, outdir):
        self.outdir = outdir
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            base = os.path.join(self.outdir, "msg%03d" % self.count)
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        parts = []
        structure = []

        def tree(part, depth):
            structure.append("  " * depth + part.get_content_type())
            if part.is_multipart():
                for sub in part.iter_parts():
                    tree(sub, depth + 1)

        tree(msg, 0)
        for part in msg.walk():
            if part.is_multipart():
                continue
            content = part.get_content()
            if isinstance(content, bytes):
                content = content.decode("utf-8", "replace")
            parts.append(
                {
                    "content_type": part.get_content_type(),
                    "filename": part.get_filename(),
                    "text": content,
                }
            )
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_to": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
            "subject": str(msg["subject"]),
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "date": str(msg["date"]),
            "structure": structure,
            "parts": parts,
        }
        with open(base + ".eml", "wb") as f:
            f.write(raw)
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".json.tmp", base + ".json")  # the .json appears whole, last
        return "250 OK message accepted"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--outdir", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--lifetime", type=float, default=600)
    a = p.parse_args()
    host, port = a.listen.rsplit(":", 1)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == a.user.encode()
            and auth_data.password == a.password.encode()
        )
        return AuthResult(success=ok, handled=False)

    kwargs = {}
    if a.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        kwargs.update(tls_context=ctx, require_starttls=True)
    if a.user:
        kwargs.update(
            authenticator=authenticator, auth_required=True, auth_require_tls=bool(a.cert)
        )
    controller = Controller(Saver(a.outdir), hostname=host, port=int(port), **kwargs)
    controller.start()
    print("READY", flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait(a.lifetime)
    controller.stop()


if __name__ == "__main__":
    main()
