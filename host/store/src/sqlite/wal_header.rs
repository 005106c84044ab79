//! The change token read from the WAL-index header, without a lock.
//!
//! In WAL mode every commit, by any connection of any process, ends by
//! writing the WAL-index header in the shared-memory file (`-shm`): a
//! counter incremented by each transaction (`iChange`), the last valid frame
//! (`mxFrame`), the WAL's salts, and a checksum over all of them. Readers
//! find their snapshot from that header, and read it without a lock: the
//! writer writes its second copy, then (after a memory barrier) its first;
//! a reader reads the first, then (after a barrier) the second, and trusts
//! it only when both are equal, initialised and their checksum holds
//! (SQLite's `walIndexTryHdr`; the layout is SQLite's documented file
//! format, <https://sqlite.org/walformat.html>, section 2.1).
//!
//! [`WalHeader::token`] does the same, and folds the header into a number:
//! any commit changes it (`iChange` alone does), so a reader that saw the
//! store at token `t` and reads `t` again knows nothing was committed since,
//! exactly as SQLite's own readers know it. It costs two 48-byte reads of
//! memory, where `PRAGMA data_version` opened a read transaction (a
//! `fcntl` lock) behind a mutex.
//!
//! The header is reached through the anchor connection's own mapping (the
//! VFS's `xShmMap` for region 0, which that connection mapped when it first
//! read), so no file descriptor of ours is ever opened on the `-shm` file:
//! closing one would drop SQLite's POSIX locks on it. The mapping lives as
//! long as the anchor connection, which lives as long as the storage.
//!
//! This is the store's one module with `unsafe` code: a call into SQLite's
//! C API for the mapping, and atomic loads from it. Every block says why it
//! holds.
#![allow(unsafe_code)]

use std::os::raw::{c_int, c_void};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering, fence};

use rusqlite::Connection;
use rusqlite::ffi;

/// Words of one copy of the header (48 bytes).
const HEADER_WORDS: usize = 12;
/// The size of a WAL-index region (`WALINDEX_PGSZ`).
const REGION_BYTES: c_int = 32 * 1024;
/// Reads of a header being written before giving up (the caller then
/// asks SQLite).
const TRIES: usize = 16;

/// The WAL-index header of one database, mapped by the anchor connection.
pub(super) struct WalHeader {
    base: NonNull<u32>,
}

// SAFETY: the pointer is to shared memory that stays mapped as long as the
// anchor connection (and so the storage holding both) lives; it is only
// read, with atomic loads, as SQLite's own readers in other threads and
// processes read it.
unsafe impl Send for WalHeader {}
// SAFETY: as for Send: reads only.
unsafe impl Sync for WalHeader {}

impl WalHeader {
    /// The header of `conn`'s database, through `conn`'s mapping of the
    /// WAL index; `None` when it has none (not in WAL mode, a VFS without
    /// shared memory, nothing mapped yet). `conn` must have read the
    /// database at least once, and must outlive the returned header.
    pub(super) fn map(conn: &Connection) -> Option<WalHeader> {
        // SAFETY: `conn.handle()` is a live connection; SQLITE_FCNTL_FILE_POINTER
        // writes the main database's `sqlite3_file*` (owned by the
        // connection) into `file`. `xShmMap` with bExtend=0 returns the
        // region already mapped for this connection, or null; it is the
        // VFS's documented method for it (sqlite3_io_methods version 2).
        unsafe {
            let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
            let rc = ffi::sqlite3_file_control(
                conn.handle(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                (&raw mut file).cast::<c_void>(),
            );
            if rc != ffi::SQLITE_OK || file.is_null() {
                return None;
            }
            let methods = (*file).pMethods;
            if methods.is_null() || (*methods).iVersion < 2 {
                return None;
            }
            let map = (*methods).xShmMap?;
            let mut region: *mut c_void = std::ptr::null_mut();
            if map(file, 0, REGION_BYTES, 0, &raw mut region) != ffi::SQLITE_OK {
                return None;
            }
            let base = NonNull::new(region.cast::<u32>())?;
            if !base.as_ptr().is_aligned() {
                return None;
            }
            let header = WalHeader { base };
            // Only a header that reads as SQLite writes it is used.
            header.token()?;
            Some(header)
        }
    }

    /// The change token: a fold of a consistent header; `None` if no
    /// consistent copy could be read (a writer kept writing it, or it is
    /// not initialised): ask SQLite instead.
    pub(super) fn token(&self) -> Option<u64> {
        self.counted_token().map(|(token, _)| token)
    }

    /// [`WalHeader::token`] with the `iChange` it was read with: every
    /// commit increments it by one, so two readings whose counts are one
    /// apart bracket exactly one commit.
    pub(super) fn counted_token(&self) -> Option<(u64, u32)> {
        for _ in 0..TRIES {
            let first = self.copy(0);
            fence(Ordering::SeqCst);
            let second = self.copy(HEADER_WORDS);
            if first == second && is_initialised(&first) && checksum_holds(&first) {
                return Some((fold(&first), first[2]));
            }
            std::hint::spin_loop();
        }
        None
    }

    /// One copy of the header, word by word.
    fn copy(&self, start: usize) -> [u32; HEADER_WORDS] {
        let mut words = [0u32; HEADER_WORDS];
        for (i, word) in words.iter_mut().enumerate() {
            // SAFETY: the first region is 32 KiB, of which the two copies
            // of the header are the first 96 bytes; the base is aligned for
            // u32 (checked in `map`), and the memory is only ever accessed
            // by word-sized or larger copies, which an atomic load of each
            // word observes as SQLite's readers do.
            *word = unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(start + i)) }.load(Ordering::Acquire);
        }
        words
    }
}

/// `isInit`, the byte after `iChange` (word 3, first byte in memory).
fn is_initialised(words: &[u32; HEADER_WORDS]) -> bool {
    words[3].to_ne_bytes()[0] != 0
}

/// SQLite's checksum of the header's first 40 bytes, in native byte order
/// (`walChecksumBytes(1, …)`), against the last two words.
fn checksum_holds(words: &[u32; HEADER_WORDS]) -> bool {
    let (mut s1, mut s2) = (0u32, 0u32);
    for pair in words[..10].chunks_exact(2) {
        s1 = s1.wrapping_add(pair[0]).wrapping_add(s2);
        s2 = s2.wrapping_add(pair[1]).wrapping_add(s1);
    }
    s1 == words[10] && s2 == words[11]
}

/// The header as one number: `iChange` (which every commit increments) in
/// the high half, mixed with the rest.
fn fold(words: &[u32; HEADER_WORDS]) -> u64 {
    let mut rest = 0xcbf2_9ce4_8422_2325u64;
    for (i, word) in words.iter().enumerate().filter(|(i, _)| *i != 2) {
        rest = (rest ^ u64::from(*word) ^ ((i as u64) << 40)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    (u64::from(words[2]) << 32) ^ (rest & 0xffff_ffff) ^ (rest >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_token_changes_with_every_commit_of_any_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let anchor = Connection::open(&path).unwrap();
        anchor.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER)").unwrap();
        let _: i64 = anchor.query_row("PRAGMA data_version", [], |r| r.get(0)).unwrap();
        let header = WalHeader::map(&anchor).expect("a WAL database has a header");
        let other = Connection::open(&path).unwrap();
        let mut seen = vec![header.token().unwrap()];
        for i in 0..20 {
            other.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
            let token = header.token().unwrap();
            assert!(!seen.contains(&token), "commit {i} left the token at one seen before");
            seen.push(token);
            // Reading changes nothing.
            let _: i64 = other.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)).unwrap();
            assert_eq!(header.token(), Some(token));
        }
        // A checkpoint that restarts the WAL also changes it (a harmless miss).
        other.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        other.execute("INSERT INTO t VALUES (99)", []).unwrap();
        assert!(!seen.contains(&header.token().unwrap()));
    }

    #[test]
    fn a_torn_or_garbled_header_is_not_trusted() {
        let mut words = [0u32; HEADER_WORDS];
        words[0] = 3_007_000;
        words[2] = 7;
        words[3] = u32::from_ne_bytes([1, 0, 0x10, 0]);
        words[4] = 42;
        let (mut s1, mut s2) = (0u32, 0u32);
        for pair in words[..10].chunks_exact(2) {
            s1 = s1.wrapping_add(pair[0]).wrapping_add(s2);
            s2 = s2.wrapping_add(pair[1]).wrapping_add(s1);
        }
        (words[10], words[11]) = (s1, s2);
        assert!(checksum_holds(&words) && is_initialised(&words));
        let mut garbled = words;
        garbled[4] = 43;
        assert!(!checksum_holds(&garbled));
        let mut uninitialised = words;
        uninitialised[3] = 0;
        assert!(!is_initialised(&uninitialised));
        let mut next = words;
        next[2] = 8;
        assert_ne!(fold(&words), fold(&next));
    }
}
