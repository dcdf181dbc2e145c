//! The storage seam: named, ordered key-value tables, read and written inside transactions.
//!
//! A backend knows nothing of mail, records or users. It offers [`Backend::read`], which
//! runs a function over a consistent snapshot, and [`Backend::write`], which runs a function
//! in a transaction that commits as a whole when the function succeeds and leaves nothing
//! behind when it fails. Inside, the function gets, puts, deletes and scans byte keys in
//! byte order ([`Reader`], [`Writer`]). Everything Mailroom keeps is written once, above
//! this seam, as such functions; a backend is tables, encoding and transactions.
//!
//! Transaction functions are synchronous: the embedded backend runs them on its writer
//! thread (reads where they are asked for); a networked one runs them on a blocking
//! thread, each read a round trip and the writes sent together at commit.
//!
//! What a backend must guarantee: write transactions run **one at a time** (the rules count
//! on it: the next event number, the outbox's numbering, unique external ids and one
//! created contact per address are read and written in the same transaction), and a read
//! sees one committed state throughout. Keys compare as unsigned bytes.
//!
//! Keys are tuples ([`Key`]) encoded so that byte order is tuple order and a tuple's
//! encoding is a prefix of every longer tuple that starts with it; values are typed by their
//! table ([`Table`]).

pub mod conformance;
pub mod memory;
pub mod postgres;
pub mod redb;

use super::{Result, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Bound;

/// What a scan calls with each key and value; `false` ends the scan.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

/// Reads of one transaction: a snapshot that later writes do not change.
pub trait Reader {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// The values of `keys`, in the order asked, `None` where a key is absent: one read for
    /// a backend where each read is a round trip.
    fn get_many(&self, table: &'static str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|key| self.get(table, key)).collect()
    }
    /// Visits the entries of `table` with keys within `from..to`, in key order or reversed,
    /// until `visit` returns `false`.
    fn scan(
        &self,
        table: &'static str,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        reverse: bool,
        visit: &mut Visit<'_>,
    ) -> Result<()>;
}

/// Reads and writes of one write transaction; reads see its own writes.
pub trait Writer: Reader {
    fn put(&mut self, table: &'static str, key: &[u8], value: &[u8]) -> Result<()>;
    /// Removes a key; returns whether it was there.
    fn delete(&mut self, table: &'static str, key: &[u8]) -> Result<bool>;
    /// Removes a key, there or not: no read for a backend where a read is a round trip.
    fn remove(&mut self, table: &'static str, key: &[u8]) -> Result<()> {
        self.delete(table, key).map(drop)
    }
}

/// A place that keeps tables.
pub trait Backend: Send + Sync + 'static {
    /// Runs `f` over a snapshot of every table.
    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Reader) -> Result<T> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send;
    /// The names of the tables that may hold anything (those ever written).
    fn tables(&self) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Runs `f` in a write transaction, one at a time; commits when it returns `Ok`.
    fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Writer) -> Result<T> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send;
}

/// A tuple key under construction: strings, integers and bytes, in order.
///
/// Strings and bytes end with `00 01` and have each `00` inside written `00 FF`, so a shorter
/// value sorts first and no element runs into the next; integers are 8 bytes big-endian
/// (signed ones with the sign bit flipped).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key(Vec<u8>);

impl Key {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn str(self, value: &str) -> Self {
        self.bytes(value.as_bytes())
    }

    pub fn bytes(mut self, value: &[u8]) -> Self {
        for &byte in value {
            self.0.push(byte);
            if byte == 0 {
                self.0.push(0xFF);
            }
        }
        self.0.extend_from_slice(&[0, 1]);
        self
    }

    /// The start of every string element that begins with `value`: a prefix to scan, never
    /// followed by another element.
    pub fn str_prefix(mut self, value: &str) -> Self {
        for &byte in value.as_bytes() {
            self.0.push(byte);
            if byte == 0 {
                self.0.push(0xFF);
            }
        }
        self
    }

    pub fn u64(mut self, value: u64) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn i64(self, value: i64) -> Self {
        self.u64((value as u64) ^ (1 << 63))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The first key after every key that starts with this one; `None` when there is none
    /// (the empty key, or one of `FF` bytes only).
    fn prefix_end(&self) -> Option<Vec<u8>> {
        let mut end = self.0.clone();
        while end.pop_if(|byte| *byte == 0xFF).is_some() {}
        let last = end.last_mut()?;
        *last += 1;
        Some(end)
    }

    /// The range of every key that starts with this one.
    fn prefix_range(&self) -> (Bound<&[u8]>, Bound<Vec<u8>>) {
        let end = match self.prefix_end() {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        (Bound::Included(self.as_bytes()), end)
    }
}

/// A stored key read back element by element, in the order it was built.
pub struct KeyReader<'a>(&'a [u8]);

impl KeyReader<'_> {
    /// The bytes not read yet.
    pub fn rest(&self) -> &[u8] {
        self.0
    }
}

impl<'a> KeyReader<'a> {
    pub fn new(key: &'a [u8]) -> Self {
        Self(key)
    }

    pub fn str(&mut self) -> Result<String> {
        String::from_utf8(self.bytes()?).map_err(|_| damaged("a key"))
    }

    /// A string element, borrowed from the key when it holds no escaped `00` byte.
    pub fn text(&mut self) -> Result<Cow<'a, str>> {
        let end = self
            .0
            .windows(2)
            .position(|pair| pair[0] == 0)
            .ok_or_else(|| damaged("a key"))?;
        if self.0[end + 1] != 1 {
            return self.str().map(Cow::Owned);
        }
        let text = std::str::from_utf8(&self.0[..end]).map_err(|_| damaged("a key"))?;
        self.0 = &self.0[end + 2..];
        Ok(Cow::Borrowed(text))
    }

    pub fn bytes(&mut self) -> Result<Vec<u8>> {
        let mut value = Vec::new();
        let mut rest = self.0;
        loop {
            match rest {
                [0, 1, tail @ ..] => {
                    self.0 = tail;
                    return Ok(value);
                }
                [0, 0xFF, tail @ ..] => {
                    value.push(0);
                    rest = tail;
                }
                [byte, tail @ ..] if *byte != 0 => {
                    value.push(*byte);
                    rest = tail;
                }
                _ => return Err(damaged("a key")),
            }
        }
    }

    pub fn u64(&mut self) -> Result<u64> {
        let (head, tail) = self.0.split_first_chunk::<8>().ok_or(damaged("a key"))?;
        self.0 = tail;
        Ok(u64::from_be_bytes(*head))
    }

    pub fn i64(&mut self) -> Result<i64> {
        Ok((self.u64()? ^ (1 << 63)) as i64)
    }
}

/// Whether `from..to` holds no key at all (ordered maps refuse such ranges).
pub(super) fn is_empty_range(from: Bound<&[u8]>, to: Bound<&[u8]>) -> bool {
    match (from, to) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            a >= b
        }
        _ => false,
    }
}

fn damaged(what: &str) -> StoreError {
    StoreError::Backend(format!("{what} in the store is damaged"))
}

/// How a table's values are written.
pub trait Codec {
    type Value;
    /// The bytes to keep: borrowed when the value is already bytes.
    fn encode(value: &Self::Value) -> Result<Cow<'_, [u8]>>;
    fn decode(bytes: &[u8]) -> Result<Self::Value>;
}

/// Values as JSON: readable, and tolerant of fields added later.
pub struct Json<T>(PhantomData<T>);

impl<T: Serialize + DeserializeOwned> Codec for Json<T> {
    type Value = T;
    fn encode(value: &T) -> Result<Cow<'_, [u8]>> {
        serde_json::to_vec(value)
            .map(Cow::Owned)
            .map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))
    }
    fn decode(bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes)
            .map_err(|e| StoreError::Backend(format!("a stored value is damaged: {e}")))
    }
}

/// Values kept as the bytes they are.
pub struct Bytes;

impl Codec for Bytes {
    type Value = Vec<u8>;
    fn encode(value: &Vec<u8>) -> Result<Cow<'_, [u8]>> {
        Ok(Cow::Borrowed(value))
    }
    fn decode(bytes: &[u8]) -> Result<Vec<u8>> {
        Ok(bytes.to_vec())
    }
}

/// Values that are text, kept as their UTF-8 bytes (ids pointing elsewhere).
pub struct Text;

impl Codec for Text {
    type Value = String;
    fn encode(value: &String) -> Result<Cow<'_, [u8]>> {
        Ok(Cow::Borrowed(value.as_bytes()))
    }
    fn decode(bytes: &[u8]) -> Result<String> {
        String::from_utf8(bytes.to_vec()).map_err(|_| damaged("a stored id"))
    }
}

/// No value: the key is the fact (an index entry).
pub struct Unit;

impl Codec for Unit {
    type Value = ();
    fn encode(_: &()) -> Result<Cow<'_, [u8]>> {
        Ok(Cow::Borrowed(&[]))
    }
    fn decode(_: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// A table by name, with the codec of its values.
pub struct Table<C> {
    pub name: &'static str,
    codec: PhantomData<fn() -> C>,
}

impl<C: Codec> Table<C> {
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            codec: PhantomData,
        }
    }

    pub fn get(&self, txn: &dyn Reader, key: &Key) -> Result<Option<C::Value>> {
        txn.get(self.name, key.as_bytes())?
            .map(|bytes| C::decode(&bytes))
            .transpose()
    }

    /// The values of `keys`, in their order, `None` where a key is absent.
    pub fn get_many(&self, txn: &dyn Reader, keys: &[Key]) -> Result<Vec<Option<C::Value>>> {
        let keys: Vec<&[u8]> = keys.iter().map(Key::as_bytes).collect();
        txn.get_many(self.name, &keys)?
            .into_iter()
            .map(|bytes| bytes.map(|bytes| C::decode(&bytes)).transpose())
            .collect()
    }

    pub fn contains(&self, txn: &dyn Reader, key: &Key) -> Result<bool> {
        Ok(txn.get(self.name, key.as_bytes())?.is_some())
    }

    pub fn put(&self, txn: &mut dyn Writer, key: &Key, value: &C::Value) -> Result<()> {
        txn.put(self.name, key.as_bytes(), &C::encode(value)?)
    }

    /// Removes a key; returns whether it was there.
    pub fn delete(&self, txn: &mut dyn Writer, key: &Key) -> Result<bool> {
        txn.delete(self.name, key.as_bytes())
    }

    /// Removes a key, there or not.
    pub fn remove(&self, txn: &mut dyn Writer, key: &Key) -> Result<()> {
        txn.remove(self.name, key.as_bytes())
    }

    /// Visits the entries whose keys start with `prefix` with their stored bytes, not
    /// decoded, in key order or reversed, until `visit` returns `false`.
    pub fn scan_prefix_raw(
        &self,
        txn: &dyn Reader,
        prefix: &Key,
        reverse: bool,
        mut visit: impl FnMut(KeyReader<'_>, &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let (from, to) = prefix.prefix_range();
        txn.scan(
            self.name,
            from,
            to.as_ref().map(Vec::as_slice),
            reverse,
            &mut |key, value| visit(KeyReader::new(&key[prefix.0.len()..]), value),
        )
    }

    /// The first (or with `reverse`, last) key that starts with `prefix`, without it.
    pub fn first_key(
        &self,
        txn: &dyn Reader,
        prefix: &Key,
        reverse: bool,
    ) -> Result<Option<Vec<u8>>> {
        let mut found = None;
        self.scan_prefix_raw(txn, prefix, reverse, |rest, _| {
            found = Some(rest.0.to_vec());
            Ok(false)
        })?;
        Ok(found)
    }

    /// Removes a key and returns its value.
    pub fn take(&self, txn: &mut dyn Writer, key: &Key) -> Result<Option<C::Value>> {
        let value = self.get(txn, key)?;
        if value.is_some() {
            txn.remove(self.name, key.as_bytes())?;
        }
        Ok(value)
    }

    /// Visits the entries whose keys start with `prefix`, in key order or reversed, until
    /// `visit` returns `false`.
    pub fn scan_prefix(
        &self,
        txn: &dyn Reader,
        prefix: &Key,
        reverse: bool,
        mut visit: impl FnMut(KeyReader<'_>, C::Value) -> Result<bool>,
    ) -> Result<()> {
        self.scan_prefix_raw(txn, prefix, reverse, |key, value| {
            visit(key, C::decode(value)?)
        })
    }

    /// Like [`Table::scan_prefix`], within the keys after `after` and before `before`
    /// (both start with `prefix`; unbounded: the prefix's first or last key).
    pub fn scan_between(
        &self,
        txn: &dyn Reader,
        prefix: &Key,
        after: Bound<&Key>,
        before: Bound<&Key>,
        reverse: bool,
        mut visit: impl FnMut(KeyReader<'_>, C::Value) -> Result<bool>,
    ) -> Result<()> {
        for bound in [after, before] {
            if let Bound::Included(key) | Bound::Excluded(key) = bound {
                debug_assert!(key.0.starts_with(&prefix.0), "a bound outside its prefix");
            }
        }
        let (start, end) = prefix.prefix_range();
        let from = match after {
            Bound::Unbounded => start,
            Bound::Included(key) => Bound::Included(key.as_bytes()),
            Bound::Excluded(key) => Bound::Excluded(key.as_bytes()),
        };
        let to = match before {
            Bound::Unbounded => end.as_ref().map(Vec::as_slice),
            Bound::Included(key) => Bound::Included(key.as_bytes()),
            Bound::Excluded(key) => Bound::Excluded(key.as_bytes()),
        };
        txn.scan(self.name, from, to, reverse, &mut |key, value| {
            visit(KeyReader::new(&key[prefix.0.len()..]), C::decode(value)?)
        })
    }

    /// The first (or with `reverse`, last) entry whose key starts with `prefix`.
    pub fn first(
        &self,
        txn: &dyn Reader,
        prefix: &Key,
        reverse: bool,
    ) -> Result<Option<(Vec<u8>, C::Value)>> {
        let mut found = None;
        self.scan_prefix(txn, prefix, reverse, |rest, value| {
            found = Some((rest.0.to_vec(), value));
            Ok(false)
        })?;
        Ok(found)
    }

    /// Every entry whose key starts with `prefix`, in key order: the rest of each key and
    /// its value.
    pub fn prefixed(&self, txn: &dyn Reader, prefix: &Key) -> Result<Vec<(Vec<u8>, C::Value)>> {
        let mut entries = Vec::new();
        self.scan_prefix(txn, prefix, false, |rest, value| {
            entries.push((rest.0.to_vec(), value));
            Ok(true)
        })?;
        Ok(entries)
    }

    /// Every value of the table, in key order.
    pub fn values(&self, txn: &dyn Reader) -> Result<Vec<C::Value>> {
        let mut values = Vec::new();
        self.scan_prefix(txn, &Key::new(), false, |_, value| {
            values.push(value);
            Ok(true)
        })?;
        Ok(values)
    }

    /// Every key that starts with `prefix`, each without the prefix, read back by `read`.
    pub fn keys<T>(
        &self,
        txn: &dyn Reader,
        prefix: &Key,
        mut read: impl FnMut(&mut KeyReader<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut keys = Vec::new();
        self.scan_prefix_raw(txn, prefix, false, |mut rest, _| {
            keys.push(read(&mut rest)?);
            Ok(true)
        })?;
        Ok(keys)
    }

    /// How many keys start with `prefix`.
    pub fn count(&self, txn: &dyn Reader, prefix: &Key) -> Result<u64> {
        let mut count = 0;
        self.scan_prefix_raw(txn, prefix, false, |_, _| {
            count += 1;
            Ok(true)
        })?;
        Ok(count)
    }

    /// Removes every entry whose key starts with `prefix`; returns how many.
    pub fn delete_prefix(&self, txn: &mut dyn Writer, prefix: &Key) -> Result<usize> {
        let mut keys = Vec::new();
        let (from, to) = prefix.prefix_range();
        txn.scan(
            self.name,
            from,
            to.as_ref().map(Vec::as_slice),
            false,
            &mut |key, _| {
                keys.push(key.to_vec());
                Ok(true)
            },
        )?;
        for key in &keys {
            txn.remove(self.name, key)?;
        }
        Ok(keys.len())
    }
}

impl Table<Bytes> {
    /// Keeps bytes the caller holds as a slice, without copying them first.
    pub fn put_slice(&self, txn: &mut dyn Writer, key: &Key, value: &[u8]) -> Result<()> {
        txn.put(self.name, key.as_bytes(), value)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn tuple_order_is_byte_order() {
        let keys = [
            Key::new().str("a"),
            Key::new().str("a").str(""),
            Key::new().str("a").str("b"),
            Key::new().str("a\0"),
            Key::new().str("a\0b"),
            Key::new().str("ab"),
            Key::new().str("b"),
        ];
        for pair in keys.windows(2) {
            assert!(pair[0] < pair[1], "{:?} < {:?}", pair[0], pair[1]);
        }
        let numbers = [i64::MIN, -2, -1, 0, 1, i64::MAX];
        for pair in numbers.windows(2) {
            assert!(Key::new().i64(pair[0]) < Key::new().i64(pair[1]));
        }
        assert!(Key::new().u64(255) < Key::new().u64(256));
    }

    #[test]
    fn a_prefix_range_holds_exactly_the_keys_that_start_with_it() {
        let prefix = Key::new().str("a");
        let (_, end) = prefix.prefix_range();
        let Bound::Excluded(end) = end else { panic!() };
        let inside = [
            Key::new().str("a").u64(u64::MAX),
            Key::new().str("a").bytes(&[0xFF; 3]),
        ];
        for key in inside {
            assert!(key.as_bytes() >= prefix.as_bytes() && key.as_bytes() < end.as_slice());
        }
        assert!(Key::new().str("a\u{1}").as_bytes() >= end.as_slice());
        assert!(Key::new().prefix_end().is_none());
        assert_eq!(Key(vec![1, 0xFF, 0xFF]).prefix_end(), Some(vec![2]));
    }

    #[test]
    fn a_key_reads_back_as_it_was_built() {
        let key = Key::new()
            .str("acc\0x")
            .i64(-5)
            .u64(7)
            .bytes(&[0, 1, 0xFF])
            .str("");
        let mut reader = KeyReader::new(key.as_bytes());
        assert_eq!(reader.str().unwrap(), "acc\0x");
        assert_eq!(reader.i64().unwrap(), -5);
        assert_eq!(reader.u64().unwrap(), 7);
        assert_eq!(reader.bytes().unwrap(), [0, 1, 0xFF]);
        assert_eq!(reader.str().unwrap(), "");
        assert!(reader.u64().is_err());

        let key = Key::new().str("a\0b").str("cd").u64(1);
        let mut reader = KeyReader::new(key.as_bytes());
        assert_eq!(reader.text().unwrap(), "a\0b");
        assert!(matches!(reader.text().unwrap(), Cow::Borrowed("cd")));
        assert_eq!(reader.u64().unwrap(), 1);
    }
}
