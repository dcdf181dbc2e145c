"""A POP3 connector for Mailroom written in Python, built into a component with componentize-py.

The same protocol as examples/pop3-connector, written the way a Python author would: one
folder (INBOX), messages named by their UIDL and dated by their Date header, nothing
changed on the server. The host opens the connections and logs in (mailroom:connector@0.4.0's
`login`), so the password never reaches this code.
"""

import email.utils
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import connector
from wit_world.imports import changes, log, login, mail, net, sinks, types

ID = "pop3-py"
VERSION = "1.0.0"
INBOX = "INBOX"
READ_CHUNK = 64 * 1024
# The host keeps a folder state of at most 64 KiB; only the newest UIDLs that fit are kept.
MAX_STATE_BYTES = 60 * 1024
MAX_LINE = 1 << 20


def error(kind: types.ErrorKind, message: str) -> Err:
    return Err(types.Error(kind, message, "pop3", None))


class Connector(exports.Connector):
    def describe(self) -> connector.Info:
        return connector.Info(
            id=ID,
            name="POP3 (Python)",
            version=VERSION,
            auth=connector.AuthKind.PASSWORD,
            servers=["pop3"],
        )


class Pop3:
    """A logged-in POP3 session on a connection the host opened."""

    def __init__(self, server: types.Server):
        self.conn = net.connect(server.host, server.port, server.encryption)
        self.buffer = b""
        self.status()
        capabilities = self.capabilities()
        if server.encryption == types.Encryption.STARTTLS:
            if not any(c.upper() == "STLS" for c in capabilities):
                raise error(types.ErrorKind.TLS, "the server does not offer STLS")
            self.command("STLS")
            self.buffer = b""
            self.conn.start_tls()
            capabilities = self.capabilities()
        mechanisms = next(
            (c.split()[1:] for c in capabilities if c.upper().startswith("SASL ")), []
        )
        login.authenticate(self.conn, login.Protocol.POP3, mechanisms)

    def listing(self) -> list[tuple[int, str, int]]:
        """(number, uidl, size) of every message, in arrival order."""
        uids = {}
        for line in self.multi_line("UIDL"):
            number, uid = line.split(" ", 1)
            uids[int(number)] = uid.strip()
        entries = []
        for line in self.multi_line("LIST"):
            number, size = line.split(" ", 1)
            number = int(number)
            if number not in uids:
                raise error(types.ErrorKind.PROTOCOL, "LIST and UIDL disagree")
            entries.append((number, uids[number], int(size.split()[0])))
        return entries

    def top(self, number: int) -> bytes:
        self.command(f"TOP {number} 0")
        return b"".join(self.body())

    def retrieve(self, number: int):
        """The message's lines, dot-unstuffed, each ending in CRLF."""
        self.command(f"RETR {number}")
        return self.body()

    def capabilities(self) -> list[str]:
        self.send("CAPA")
        ok, _ = self.status(raise_on_error=False)
        return self.lines() if ok else []

    def command(self, line: str) -> str:
        self.send(line)
        return self.status()[1]

    def multi_line(self, line: str) -> list[str]:
        self.command(line)
        return self.lines()

    def send(self, line: str):
        self.conn.write(line.encode() + b"\r\n")

    def status(self, raise_on_error: bool = True) -> tuple[bool, str]:
        line = self.read_line().decode("utf-8", "replace").rstrip("\r\n")
        if line.startswith("+OK"):
            return True, line[3:].strip()
        if line.startswith("-ERR"):
            if raise_on_error:
                raise error(types.ErrorKind.PROTOCOL, f"the server refused: {line[4:].strip()[:200]}")
            return False, line[4:].strip()
        raise error(types.ErrorKind.PROTOCOL, "the server's reply is not +OK or -ERR")

    def lines(self) -> list[str]:
        return [line.decode("utf-8", "replace").rstrip("\r\n") for line in self.body()]

    def body(self):
        while True:
            line = self.read_line()
            text = line.rstrip(b"\r\n")
            if text == b".":
                return
            if text.startswith(b"."):
                text = text[1:]
            yield text + b"\r\n"

    def read_line(self) -> bytes:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line, self.buffer = self.buffer[: end + 1], self.buffer[end + 1 :]
                return line
            if len(self.buffer) > MAX_LINE:
                raise error(types.ErrorKind.PROTOCOL, "the server sent an over-long line")
            data = self.conn.read(READ_CHUNK)
            if not data:
                raise error(types.ErrorKind.CONNECT, "the server closed the connection")
            self.buffer += data


def date_of(headers: bytes) -> int | None:
    """The Date header as seconds since the Unix epoch, when it is readable."""
    value = None
    for line in headers.split(b"\r\n"):
        if not line:
            break
        if value is not None:
            if line[:1] not in (b" ", b"\t"):
                break
            value += line.decode("latin-1")
            continue
        name, colon, rest = line.partition(b":")
        if colon and name.strip().lower() == b"date":
            value = rest.decode("latin-1")
    try:
        return int(email.utils.parsedate_to_datetime(value.strip()).timestamp())
    except (AttributeError, TypeError, ValueError):
        return None


class Known:
    """The folder's state: the UIDLs the host holds (the newest that fit in the host's 64 KiB,
    whatever is listed before the oldest of them counting as held), and how far back the
    first sync has come: `below` is the oldest message it reached; what is listed before that
    one is still to come. A maildrop lists messages in arrival order."""

    def __init__(self, state: bytes | None):
        self.uids: set[str] = set()
        self.done = False
        self.below: str | None = None
        if state is None:
            return
        header, *uids = state.decode().split("\n")
        if header == "pop3py 2 done":
            self.done = True
        elif header.startswith("pop3py 2 below "):
            self.below = header.removeprefix("pop3py 2 below ")
        elif header != "pop3py 2 begun":
            raise error(types.ErrorKind.PROTOCOL, "the folder's state is not this connector's")
        self.uids = set(uids) - {""}

    def encode(self, listing) -> bytes:
        kept, size = [], 0
        for _, uid, _ in reversed(listing):
            if uid in self.uids:
                size += len(uid) + 1
                if size > MAX_STATE_BYTES:
                    break
                kept.append(uid)
        header = "pop3py 2 done" if self.done else (
            f"pop3py 2 below {self.below}" if self.below else "pop3py 2 begun")
        return "\n".join([header, *reversed(kept)]).encode()

    def new_in(self, listing):
        """The messages still to fetch, oldest first."""
        positions = {uid: i for i, (_, uid, _) in enumerate(listing)}
        floor = next((i for i, (_, uid, _) in enumerate(listing) if uid in self.uids), 0)
        if self.done:
            below = 0
        elif self.below is None:
            below = floor
        else:
            below = min(positions.get(self.below, floor), floor)
        return [e for e in listing[:below] + listing[floor:] if e[1] not in self.uids]

    def remember(self, uid: str, listing):
        self.uids.add(uid)
        if not self.done:
            positions = {u: i for i, (_, u, _) in enumerate(listing)}
            if self.below is None or positions[uid] < positions.get(self.below, len(listing)):
                self.below = uid


NO_FLAGS = mail.MessageFlags(seen=False, flagged=False, answered=False, draft=False)


class Session(connector.Session):
    def __init__(self, account: types.Account) -> None:
        self.account = account
        self.client = None

    def pop3(self) -> Pop3:
        if self.client is None:
            server = next((s for s in self.account.servers if s.role == "pop3"), None)
            if server is None:
                raise error(types.ErrorKind.UNSUPPORTED, "the account has no pop3 server")
            self.client = Pop3(server)
        return self.client

    def check(self) -> None:
        self.pop3()

    def list_folders(self) -> list[types.Folder]:
        return [types.Folder(path=INBOX, name="Inbox", role=types.FolderRole.INBOX, selectable=True)]

    def sync_folder(self, request: mail.SyncRequest) -> mail.Page:
        if request.folder != INBOX:
            raise error(types.ErrorKind.NOT_FOUND, "a POP3 mailbox has only INBOX")
        client = self.pop3()
        listing = client.listing()
        known = Known(request.state)
        listed = {uid for _, uid, _ in listing}
        removed = sorted(known.uids - listed)
        known.uids -= set(removed)
        page = mail.Page(reset=False, messages=[], changed=[], removed=removed,
                         state=b"", backfilled=False, more=False)
        if request.state is None and isinstance(request.start, mail.Start_Now):
            known.uids, known.done = listed, True
            page.state = known.encode(listing)
            page.backfilled = True
            return page
        backfilling = not known.done and isinstance(request.start, mail.Start_Since)
        since = request.start.value if backfilling else None
        new = known.new_in(listing)
        limits, total, done = request.limits, 0, 0
        for number, uid, size in reversed(new):
            large = size > limits.max_bytes
            if len(page.messages) >= limits.max_messages or (large and page.messages) \
                    or (not large and total + size > limits.max_bytes):
                break
            date = date_of(client.top(number)) if since is not None else None
            if since is not None and date is not None and date < since:
                # Mail arrives in order: this one and everything before it precede the start.
                known.uids.update(u for _, u, _ in listing[: listing.index((number, uid, size)) + 1])
                known.done = True
                done = len(new)
                break
            if large:
                try:
                    sink = sinks.open(size)
                except Err as refused:
                    log.write(log.Level.WARN, f"skipping message {uid}: {refused.value.message}")
                    known.remember(uid, listing)
                    done += 1
                    continue
                piece = b""
                for line in client.retrieve(number):
                    piece += line
                    if len(piece) >= READ_CHUNK:
                        sink.write(piece)
                        piece = b""
                if piece:
                    sink.write(piece)
                body = mail.Body_Sink(sink)
            else:
                raw = b"".join(client.retrieve(number))
                total += len(raw)
                date = date if date is not None else date_of(raw)
                body = mail.Body_Bytes(raw)
            page.messages.append(mail.Message(
                id=uid, flags=NO_FLAGS, received_at=date or int(time.time()), size=size, body=body))
            known.remember(uid, listing)
            done += 1
            if large:
                break
        page.more = done < len(new)
        if not page.more:
            known.done = True
            page.backfilled = True
        page.state = known.encode(listing)
        return page

    def apply(self, target: changes.Target, change: changes.Change) -> changes.Applied:
        raise error(types.ErrorKind.UNSUPPORTED,
                    "POP3 keeps no flags or folders: read, starred, moved and deleted stay in Mailroom")

    def append(self, folder: str, raw: bytes, flags: mail.MessageFlags) -> str | None:
        raise error(types.ErrorKind.UNSUPPORTED, "POP3 cannot store a message on the server")

    def send(self, envelope: changes.Envelope, raw: bytes) -> changes.Delivery:
        raise error(types.ErrorKind.UNSUPPORTED,
                    "POP3 cannot send; connect the address with an SMTP connector to send")
