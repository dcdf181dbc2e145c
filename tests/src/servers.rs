//! Real mail servers for end-to-end tests: a private Dovecot (IMAP, IMAPS and
//! LMTP) and a small SMTP submission server (`fixtures/smtp_server.py`) that
//! delivers into that Dovecot over LMTP.
//!
//! Every [`MailServers`] gets its own temporary directory and its own loopback
//! ports, so tests and test binaries can start as many as they like side by
//! side. Dovecot needs root (it switches to the `mail` user for mailboxes);
//! `fixtures/install.sh` installs what is needed.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Local parts of the test accounts; all are in [`DOMAIN`].
const USERS: [&str; 3] = ["alice", "bob", "carol"];
const DOMAIN: &str = "example.test";

const DOVECOT_CONF_TEMPLATE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/dovecot.conf.template"
));
const SMTP_SERVER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/smtp_server.py");

const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Free ports are found by binding port 0 and letting go of it, so another
/// process can take one before our server binds it. Such a clash is retried
/// with new ports this many times in all.
const START_ATTEMPTS: u32 = 3;
/// Lines of each log shown when a server fails to start.
const LOG_TAIL_LINES: usize = 40;

/// Whether a plaintext IMAP login with these credentials succeeds.
fn imap_login_works(port: u16, login: &str, password: &str) -> bool {
    use std::io::Write as _;
    let Ok(stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream.try_clone().expect("a socket handle"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return false;
    }
    let mut writer = stream;
    if write!(writer, "a LOGIN \"{login}\" \"{password}\"\r\n").is_err() {
        return false;
    }
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return false;
        }
        if let Some(status) = line.strip_prefix("a ") {
            let ok = status.starts_with("OK");
            let _ = writer.write_all(b"b LOGOUT\r\n");
            return ok;
        }
    }
}

/// How the servers differ from the default.
#[derive(Debug, Clone)]
pub struct Options {
    /// Whether IMAP advertises CONDSTORE and QRESYNC (RFC 7162).
    pub condstore: bool,
    /// Whether IMAP advertises IDLE (RFC 2177).
    pub idle: bool,
    /// Whether IMAP advertises NOTIFY (RFC 5465).
    pub notify: bool,
    /// Users besides the test accounts, for benchmarks: `user0@example.test` on (see
    /// [`MailServers::extra_user`]).
    pub extra_users: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            condstore: true,
            idle: true,
            notify: true,
            extra_users: 0,
        }
    }
}

/// Dovecot 2.3's capabilities after login.
const CAPABILITIES: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY \
THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT \
CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES \
WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE \
SAVEDATE LITERAL+ NOTIFY SPECIAL-USE";

impl Options {
    /// The Dovecot setting that advertises what the options leave of its capabilities:
    /// nothing when they leave all of them.
    fn imap_capability(&self) -> String {
        let left_out = |capability: &str| match capability {
            "CONDSTORE" | "QRESYNC" => !self.condstore,
            "IDLE" => !self.idle,
            "NOTIFY" => !self.notify,
            _ => false,
        };
        if !CAPABILITIES.split(' ').any(left_out) {
            return String::new();
        }
        let kept: Vec<&str> = CAPABILITIES.split(' ').filter(|c| !left_out(c)).collect();
        format!("imap_capability = {}", kept.join(" "))
    }
}

/// A test account on the servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub email: String,
    pub password: String,
}

/// A running private Dovecot and SMTP server. Dropping it stops both servers
/// and deletes all their files.
#[derive(Debug)]
pub struct MailServers {
    ports: Ports,
    cert_path: PathBuf,
    dovecot: Option<Child>,
    smtp: Option<Child>,
    extra_users: usize,
    // Removed when the fields are dropped, which is after `Drop::drop` has
    // stopped the servers that use it.
    dir: tempfile::TempDir,
}

#[derive(Debug, Clone, Copy)]
struct Ports {
    imap: u16,
    imaps: u16,
    pop3: u16,
    pop3s: u16,
    lmtp: u16,
    smtp_starttls: u16,
    smtps: u16,
    smtp_plain: u16,
}

/// Why one start attempt failed.
struct StartError {
    message: String,
    /// A port was taken by someone else: worth another attempt.
    port_clash: bool,
}

impl MailServers {
    /// Starts a private Dovecot and SMTP server on free loopback ports with
    /// users alice@example.test, bob@example.test and carol@example.test
    /// (password = "pw-" + local part).
    ///
    /// Panics with the servers' log output if they fail to start.
    pub fn start() -> MailServers {
        Self::start_with(Options::default())
    }

    /// Starts the servers with `options`.
    pub fn start_with(options: Options) -> MailServers {
        let mut attempt = 1;
        loop {
            match MailServers::try_start(&options) {
                Ok(servers) => return servers,
                Err(e) if e.port_clash && attempt < START_ATTEMPTS => attempt += 1,
                Err(e) => panic!(
                    "starting the test mail servers failed (attempt {attempt}): {}",
                    e.message
                ),
            }
        }
    }

    /// IMAP without TLS; STARTTLS is offered.
    pub fn imap_port(&self) -> u16 {
        self.ports.imap
    }

    /// IMAP over implicit TLS.
    pub fn imaps_port(&self) -> u16 {
        self.ports.imaps
    }

    /// POP3 without TLS; STLS is offered.
    pub fn pop3_port(&self) -> u16 {
        self.ports.pop3
    }

    /// POP3 over implicit TLS.
    pub fn pop3s_port(&self) -> u16 {
        self.ports.pop3s
    }

    /// SMTP submission with STARTTLS, which is required before AUTH.
    pub fn smtp_starttls_port(&self) -> u16 {
        self.ports.smtp_starttls
    }

    /// SMTP submission over implicit TLS.
    pub fn smtps_port(&self) -> u16 {
        self.ports.smtps
    }

    /// SMTP submission without TLS; AUTH is allowed in clear.
    pub fn smtp_plain_port(&self) -> u16 {
        self.ports.smtp_plain
    }

    /// The servers' self-signed certificate (PEM), for clients to trust.
    /// It is valid for `localhost` and `127.0.0.1`.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// Changes a user's password on both servers (each reads its file again when it
    /// changes).
    pub fn set_password(&self, local: &str, password: &str) {
        let email = format!("{local}@{DOMAIN}");
        let users: Vec<User> = self
            .users()
            .into_iter()
            .map(|mut user| {
                if user.email == email {
                    user.password = password.to_owned();
                }
                user
            })
            .collect();
        self.write_users(&users);
        // Dovecot notices a changed passwd file by its mtime, within a second or so: wait
        // until the new password works (a success leaves no trace a test could count).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !imap_login_works(self.ports.imap, &format!("{local}@{DOMAIN}"), password) {
            assert!(
                Instant::now() < deadline,
                "Dovecot did not take the new password"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Writes the user lists of both servers, each replaced whole (a later mtime, never a
    /// half-written file).
    fn write_users(&self, users: &[User]) {
        let passwd: String = users
            .iter()
            .map(|u| format!("{}:{{PLAIN}}{}\n", u.email, u.password))
            .collect();
        // The test user names and passwords need no JSON escaping.
        let entries: Vec<String> = users
            .iter()
            .map(|u| format!("  \"{}\": \"{}\"", u.email, u.password))
            .collect();
        let json = format!("{{\n{}\n}}\n", entries.join(",\n"));
        // Read by Dovecot's auth process, which runs as the dovecot user.
        for (name, contents, mode) in [("passwd", passwd, 0o644), ("users.json", json, 0o600)] {
            let next = self.path(&format!("{name}.next"));
            write_file(&next, &contents, mode);
            fs::rename(&next, self.path(name)).expect("cannot replace a user list");
        }
    }

    /// Stops Dovecot: IMAP (and LMTP delivery) are down until
    /// [`MailServers::start_dovecot_again`].
    pub fn stop_dovecot(&mut self) {
        // The master leaves the sessions it started running when it stops; a server that
        // goes down takes them with it.
        if self.dovecot.is_some() {
            let _ = self.doveadm_kick("*");
        }
        if let Some(child) = self.dovecot.take() {
            stop(child, "dovecot");
        }
    }

    /// Starts Dovecot again on the same ports with the same mailboxes.
    pub fn start_dovecot_again(&mut self) {
        if let Err(e) = self.start_dovecot() {
            panic!("restarting dovecot failed: {}", e.message);
        }
    }

    /// Has Dovecot end every IMAP session of `local`'s mailbox (`doveadm kick`), as a server
    /// does when a session idled too long or its user's password changed.
    pub fn kick(&self, local: &str) {
        let output = self.doveadm_kick(&format!("{local}@{DOMAIN}"));
        assert!(
            output.status.success(),
            "doveadm kick failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn doveadm_kick(&self, mask: &str) -> std::process::Output {
        Command::new("doveadm")
            .arg("-c")
            .arg(self.path("dovecot.conf"))
            .arg("kick")
            .arg(mask)
            .output()
            .expect("doveadm runs")
    }

    /// The `n`th of the users [`Options::extra_users`] asked for.
    pub fn extra_user(&self, n: usize) -> User {
        assert!(
            n < self.extra_users,
            "there are {} extra users",
            self.extra_users
        );
        User {
            email: format!("user{n}@{DOMAIN}"),
            password: format!("pw-user{n}"),
        }
    }

    /// Puts `count` messages (`message(i)`) straight into the user's INBOX, as a delivery
    /// agent writing the maildir would: many at once, faster than any protocol.
    pub fn fill_inbox(&self, email: &str, count: usize, message: impl Fn(usize) -> Vec<u8>) {
        let inbox = self.path("mail").join(email);
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(inbox.join(sub)).expect("a maildir");
        }
        for i in 0..count {
            let file = inbox
                .join("new")
                .join(format!("{i}.seeded.{}", std::process::id()));
            fs::write(&file, message(i)).expect("a message file");
        }
        run(
            Command::new("chown").args(["-R", "mail:mail"]).arg(&inbox),
            "chown the seeded maildir",
        );
    }

    /// The test accounts and the extra users.
    fn users(&self) -> Vec<User> {
        USERS
            .iter()
            .map(|local| self.user(local))
            .chain((0..self.extra_users).map(|n| self.extra_user(n)))
            .collect()
    }

    /// How many IMAP sessions of the user Dovecot holds now (`doveadm who`).
    pub fn imap_sessions(&self, local: &str) -> usize {
        self.sessions(&format!("{local}@{DOMAIN}"))
    }

    /// How many IMAP sessions Dovecot holds now, of all users.
    pub fn all_imap_sessions(&self) -> usize {
        self.sessions("*")
    }

    fn sessions(&self, mask: &str) -> usize {
        let output = Command::new("doveadm")
            .arg("-c")
            .arg(self.path("dovecot.conf"))
            .args(["who", "-1", mask])
            .output()
            .expect("doveadm runs");
        assert!(
            output.status.success(),
            "doveadm who failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("imap"))
            .count()
    }

    /// Delivers `raw` to the user's INBOX over LMTP (RFC 2033), as a mail server would; or,
    /// with `folder`, into that folder (Dovecot's `+detail` delivery).
    pub fn deliver(&self, local: &str, folder: Option<&str>, raw: &[u8]) {
        use std::io::Write as _;
        let stream =
            TcpStream::connect((Ipv4Addr::LOCALHOST, self.ports.lmtp)).expect("LMTP answers");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("a socket handle"));
        let mut writer = stream;
        let expect = |reader: &mut BufReader<TcpStream>, code: &str| loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("LMTP replies");
            assert!(line.starts_with(code), "LMTP said {line:?}, not {code}");
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        };
        expect(&mut reader, "220");
        let recipient = match folder {
            Some(folder) => format!("{local}+{folder}@{DOMAIN}"),
            None => format!("{local}@{DOMAIN}"),
        };
        for (command, code) in [
            ("LHLO tests.example\r\n".to_owned(), "250"),
            ("MAIL FROM:<sender@elsewhere.test>\r\n".to_owned(), "250"),
            (format!("RCPT TO:<{recipient}>\r\n"), "250"),
            ("DATA\r\n".to_owned(), "354"),
        ] {
            writer
                .write_all(command.as_bytes())
                .expect("LMTP takes commands");
            expect(&mut reader, code);
        }
        let mut data = Vec::with_capacity(raw.len() + 16);
        for line in raw.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                data.push(b'.');
            }
            data.extend_from_slice(line);
        }
        if !data.ends_with(b"\r\n") {
            data.extend_from_slice(b"\r\n");
        }
        data.extend_from_slice(b".\r\n");
        writer.write_all(&data).expect("LMTP takes the message");
        // One reply per recipient.
        expect(&mut reader, "250");
        let _ = writer.write_all(b"QUIT\r\n");
    }

    /// Dovecot's log so far.
    pub fn dovecot_log(&self) -> String {
        fs::read_to_string(self.path("dovecot.log")).unwrap_or_default()
    }

    /// The test account with this local part ("alice", "bob" or "carol").
    pub fn user(&self, local: &str) -> User {
        assert!(
            USERS.contains(&local),
            "there is no test user {local:?}; the test users are {USERS:?}"
        );
        User {
            email: format!("{local}@{DOMAIN}"),
            password: format!("pw-{local}"),
        }
    }

    /// One attempt at starting both servers. On failure the partly started
    /// servers are stopped (by dropping `servers`) before returning.
    fn try_start(options: &Options) -> Result<MailServers, StartError> {
        // UNIX socket paths are limited to ~108 bytes and Dovecot puts its
        // sockets in this directory, so keep it short and out of $TMPDIR.
        let dir = tempfile::Builder::new()
            .prefix("mr-")
            .tempdir_in("/tmp")
            .expect("cannot create a temporary directory in /tmp");
        let [
            imap,
            imaps,
            pop3,
            pop3s,
            lmtp,
            smtp_starttls,
            smtps,
            smtp_plain,
        ] = free_ports();
        let ports = Ports {
            imap,
            imaps,
            pop3,
            pop3s,
            lmtp,
            smtp_starttls,
            smtps,
            smtp_plain,
        };
        let cert_path = dir.path().join("cert.pem");
        let mut servers = MailServers {
            ports,
            cert_path,
            dovecot: None,
            smtp: None,
            extra_users: options.extra_users,
            dir,
        };

        servers.write_files(options);
        servers.start_dovecot()?;
        servers.start_smtp()?;
        Ok(servers)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Creates the certificate, the user lists and the Dovecot config.
    fn write_files(&self, options: &Options) {
        let dir = self.dir.path();
        // Dovecot's unprivileged processes (users dovecot, dovenull, mail)
        // must reach files in here; tempfile creates it as 0700.
        set_mode(dir, 0o755);

        // Mailboxes and homes are created by Dovecot as the mail user.
        for sub in ["mail", "home"] {
            fs::create_dir(dir.join(sub))
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.join(sub).display()));
        }
        run(
            Command::new("chown")
                .arg("mail:mail")
                .arg(dir.join("mail"))
                .arg(dir.join("home")),
            "chown mail:mail (the test mail servers must run as root)",
        );

        // Self-signed, so CA:TRUE like the certificates of many small mail
        // servers that clients are told to trust directly.
        run(
            Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
                ])
                .args(["-subj", "/CN=localhost"])
                .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
                .arg("-keyout")
                .arg(self.path("key.pem"))
                .arg("-out")
                .arg(&self.cert_path),
            "openssl req (creating the test certificate)",
        );

        self.write_users(&self.users());

        let dir_str = dir
            .to_str()
            .expect("the temporary directory path is not UTF-8");
        let conf = DOVECOT_CONF_TEMPLATE
            .replace("{dir}", dir_str)
            .replace("{imap_port}", &self.ports.imap.to_string())
            .replace("{imaps_port}", &self.ports.imaps.to_string())
            .replace("{pop3_port}", &self.ports.pop3.to_string())
            .replace("{pop3s_port}", &self.ports.pop3s.to_string())
            .replace("{lmtp_port}", &self.ports.lmtp.to_string())
            .replace("{imap_capability}", &options.imap_capability());
        write_file(&self.path("dovecot.conf"), &conf, 0o644);
    }

    fn start_dovecot(&mut self) -> Result<(), StartError> {
        // -F keeps the master in the foreground as our child, so it can be
        // stopped through its pid no matter what happens to its pid file.
        let mut command = Command::new(dovecot_binary());
        command.arg("-F").arg("-c").arg(self.path("dovecot.conf"));
        self.dovecot = Some(self.spawn(command, "dovecot.stderr", "dovecot")?);

        // The master binds every listener before it starts any service, so
        // once IMAP answers, IMAPS and LMTP are up too.
        let imap = SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports.imap));
        self.wait_until("Dovecot", || imap_greets(imap))
    }

    fn start_smtp(&mut self) -> Result<(), StartError> {
        let ready_file = self.path("smtp.ready");
        let mut command = Command::new("python3");
        command
            .arg(SMTP_SERVER_SCRIPT)
            .args(["--host", "127.0.0.1"])
            .args(["--port-starttls", &self.ports.smtp_starttls.to_string()])
            .args(["--port-ssl", &self.ports.smtps.to_string()])
            .args(["--port-plain", &self.ports.smtp_plain.to_string()])
            .arg("--cert")
            .arg(&self.cert_path)
            .arg("--key")
            .arg(self.path("key.pem"))
            .arg("--users")
            .arg(self.path("users.json"))
            .args(["--lmtp-host", "127.0.0.1"])
            .args(["--lmtp-port", &self.ports.lmtp.to_string()])
            .arg("--ready-file")
            .arg(&ready_file);
        self.smtp = Some(self.spawn(command, "smtp.log", "the SMTP server")?);
        self.wait_until("the SMTP server", || ready_file.exists())
    }

    /// Starts `command` with stdout and stderr going to `log_name` in the
    /// temporary directory.
    fn spawn(&self, mut command: Command, log_name: &str, what: &str) -> Result<Child, StartError> {
        let log_path = self.path(log_name);
        let log = fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let log_err = log.try_clone().expect("cannot duplicate a log file handle");
        command.stdin(Stdio::null()).stdout(log).stderr(log_err);
        command.spawn().map_err(|e| StartError {
            message: format!("cannot run {what} ({command:?}): {e}"),
            port_clash: false,
        })
    }

    /// Polls `ready` until it returns true, failing early if a server
    /// process exits and after [`STARTUP_TIMEOUT`].
    fn wait_until(
        &mut self,
        what: &str,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), StartError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let problem = loop {
            // Checked before `ready`: if our server died, whatever answers on
            // its port is not ours.
            if let Some(exited) = self.exited_server() {
                break exited;
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                break format!("{what} was not ready after {} s", STARTUP_TIMEOUT.as_secs());
            }
            thread::sleep(POLL_INTERVAL);
        };
        let logs = self.log_tails();
        Err(StartError {
            port_clash: logs.to_ascii_lowercase().contains("address already in use"),
            message: format!("{problem}\n{logs}"),
        })
    }

    /// Describes the first started server that is no longer running.
    fn exited_server(&mut self) -> Option<String> {
        [
            ("dovecot", &mut self.dovecot),
            ("the SMTP server", &mut self.smtp),
        ]
        .into_iter()
        .find_map(|(name, child)| match child.as_mut()?.try_wait() {
            Ok(Some(status)) => Some(format!("{name} exited ({status})")),
            Ok(None) => None,
            Err(e) => Some(format!("cannot check on {name}: {e}")),
        })
    }

    /// The last lines of every server log, for error messages.
    fn log_tails(&self) -> String {
        let mut out = String::new();
        for name in ["dovecot.stderr", "dovecot.log", "smtp.log"] {
            let Ok(text) = fs::read_to_string(self.path(name)) else {
                continue;
            };
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            let _ = writeln!(out, "--- {name} (last {} lines) ---", tail.len());
            for line in tail {
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }
}

impl Drop for MailServers {
    fn drop(&mut self) {
        // SMTP first: it delivers into Dovecot.
        if let Some(child) = self.smtp.take() {
            stop(child, "the SMTP server");
        }
        if let Some(child) = self.dovecot.take() {
            stop(child, "dovecot");
        }
        // The temporary directory is removed when `self.dir` is dropped.
    }
}

/// Stops a server: SIGTERM so it can shut down its own children (Dovecot's
/// master stops its service processes), then SIGKILL if it takes too long.
fn stop(mut child: Child, what: &str) {
    // std can only send SIGKILL. The pid cannot have been reused: the child
    // has not been reaped yet. Uses the shell's builtin kill, which exists
    // even where procps is not installed.
    let pid = child.id().to_string();
    let _ = Command::new("sh")
        .args(["-c", "kill -TERM \"$1\" 2>/dev/null", "sh", &pid])
        .status();
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) => return,
            Ok(None) => thread::sleep(POLL_INTERVAL),
            Err(_) => break,
        }
    }
    eprintln!("{what} (pid {pid}) did not stop on SIGTERM; killing it");
    let _ = child.kill();
    let _ = child.wait();
}

/// Distinct ports that were free a moment ago: all are held at once so the
/// kernel cannot hand out one twice.
pub(crate) fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .expect("cannot bind a free port on 127.0.0.1")
        })
        .collect();
    std::array::from_fn(|i| {
        listeners[i]
            .local_addr()
            .expect("cannot read the address of a bound socket")
            .port()
    })
}

/// True once an IMAP server at `addr` sends its `* OK` greeting, which needs
/// Dovecot's imap-login processes to be working, not just the listener.
fn imap_greets(addr: SocketAddr) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    if stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .is_err()
    {
        return false;
    }
    let mut greeting = String::new();
    match BufReader::new(stream).read_line(&mut greeting) {
        Ok(_) => greeting.starts_with("* OK"),
        Err(_) => false,
    }
}

/// The dovecot binary; /usr/sbin is often missing from a non-login PATH.
fn dovecot_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("dovecot"))
        .find(|candidate| candidate.is_file())
        .expect("dovecot is not installed (see tests/fixtures/install.sh)")
}

/// Runs a setup command to completion, panicking with its output on failure.
pub(crate) fn run(command: &mut Command, what: &str) {
    let output = match command.output() {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            panic!("{what}: program not found (see tests/fixtures/install.sh): {command:?}")
        }
        Err(e) => panic!("{what}: cannot run {command:?}: {e}"),
    };
    assert!(
        output.status.success(),
        "{what} failed ({}): {command:?}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

fn write_file(path: &Path, contents: &str, mode: u32) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    // Set explicitly: the umask may be stricter than the servers need.
    set_mode(path, mode);
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}
