//! `aquatwin backup` and `aquatwin restore`: a consistent snapshot of everything `serve` keeps
//! in its data directory, and the way back.
//!
//! `serve` keeps all of its state in the one store of its data directory (`aquatwin.redb`):
//! readings (journal and compressed blocks), estimated states, alerts, users and sessions,
//! LoRaWAN frame counters, notification subscriptions and their delivery history. Devices,
//! networks and sensors come from the configuration, which is not part of a backup. A backup is
//! every key/value pair of the store as of ONE read transaction, in the [`format`] of this
//! module; a restore writes them into a fresh store.
//!
//! - `backup --url http://HOST:PORT --out FILE`: asks a running `serve`
//!   (`POST /api/v1/admin/backup`, a `super_admin`'s access token from `$AQUATWIN_TOKEN` or
//!   `--token-file`), checks the stream as it arrives and writes it to `FILE.partial`, then
//!   fsync and rename: FILE is either absent or a complete, verified backup.
//! - `backup --data DIR --out FILE`: the same from a stopped server's data directory.
//! - `restore FILE --data DIR [--force]`: verifies the whole file first, writes a new store in a
//!   directory beside DIR and renames it into place; DIR must be empty unless `--force`, which
//!   replaces it only after the new store is complete.

mod client;
pub mod format;

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use twin::store::redb_store::FILE_NAME;
use twin::store::{Durability, KeyRange, RedbStore, Snapshot, Store, StoreError, WriteBatch};

use crate::BadInput;
use format::{BackupReader, BackupWriter, FormatError, Header};

/// The environment variable holding the access token of `backup --url`.
pub const TOKEN_ENV: &str = "AQUATWIN_TOKEN";

/// Records between two looks at the clock for a progress line.
const PROGRESS_EVERY: u64 = 4096;
/// Time between two progress lines.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Records per transaction when restoring.
const RESTORE_BATCH_RECORDS: usize = 10_000;
/// Bytes of keys and values per transaction when restoring.
const RESTORE_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// `aquatwin backup` options.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// A running server's base URL (http://HOST:PORT): it streams a consistent snapshot.
    #[arg(long, required_unless_present = "data", conflicts_with = "data")]
    url: Option<String>,
    /// A stopped server's data directory: its store is read directly.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The backup file to write (atomically: FILE.partial, then renamed).
    #[arg(long)]
    out: PathBuf,
    /// A file whose first line is a super_admin's access token (else $AQUATWIN_TOKEN).
    #[arg(long, requires = "url")]
    token_file: Option<PathBuf>,
}

/// `aquatwin restore` options.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup file.
    file: PathBuf,
    /// The data directory to restore into (must be empty or absent, unless --force).
    #[arg(long)]
    data: PathBuf,
    /// Replace a non-empty data directory (only once the backup is verified and restored
    /// beside it).
    #[arg(long)]
    force: bool,
}

/// Why a snapshot could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the store failed.
    #[error("cannot read the store: {0}")]
    Store(#[from] StoreError),
    /// Writing the backup failed.
    #[error("cannot write the backup: {0}")]
    Format(#[from] FormatError),
}

/// A snapshot of a store, counted, ready to be written as a backup. Everything it writes comes
/// from one read transaction: writers go on meanwhile and are neither blocked nor seen.
pub struct SnapshotExport<'s> {
    snapshot: Box<dyn Snapshot + 's>,
    header: Header,
}

impl<'s> SnapshotExport<'s> {
    /// Takes a snapshot of `store` and counts its records (the header announces them).
    pub fn take(store: &'s dyn Store, created_ms: i64) -> Result<Self, StoreError> {
        let snapshot = store.snapshot()?;
        let (mut records, mut payload_bytes) = (0u64, 0u64);
        snapshot.for_each(&KeyRange::all(), &mut |key, value| {
            records += 1;
            payload_bytes += (key.len() + value.len()) as u64;
            true
        })?;
        Ok(Self {
            snapshot,
            header: Header {
                created_ms,
                records,
                payload_bytes,
            },
        })
    }

    /// The header the backup will have.
    pub fn header(&self) -> Header {
        self.header
    }

    /// Writes the backup to `out`; `progress` hears `(records, bytes)` now and then.
    pub fn write_to<W: Write>(
        &self,
        out: W,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<W, ExportError> {
        let mut writer = BackupWriter::new(out, self.header)?;
        let mut failure = None;
        let mut records = 0u64;
        self.snapshot
            .for_each(&KeyRange::all(), &mut |key, value| {
                if let Err(err) = writer.record(key, value) {
                    failure = Some(err);
                    return false;
                }
                records += 1;
                if records.is_multiple_of(PROGRESS_EVERY) {
                    progress(records, writer.bytes_written());
                }
                true
            })?;
        if let Some(err) = failure {
            return Err(err.into());
        }
        Ok(writer.finish()?)
    }
}

/// Progress lines on stderr, at most one per [`PROGRESS_INTERVAL`].
struct Progress {
    action: &'static str,
    total_records: u64,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(action: &'static str, total_records: u64) -> Self {
        let now = Instant::now();
        Self {
            action,
            total_records,
            started: now,
            last: now,
        }
    }

    fn update(&mut self, records: u64, bytes: u64) {
        if self.last.elapsed() < PROGRESS_INTERVAL {
            return;
        }
        self.last = Instant::now();
        eprintln!(
            "{}: {records} of {} keys, {:.1} MB, {:.0} s",
            self.action,
            self.total_records,
            bytes as f64 / 1e6,
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// Writes `out` atomically: `fill` writes `OUT.partial`, which is synced and renamed to `out`;
/// on failure the partial file is removed.
fn write_atomically<T>(
    out: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = File::create(&partial)
        .map_err(|err| BadInput(format!("cannot create {}: {err}", partial.display())))?;
    let mut writer = BufWriter::new(file);
    let written = fill(&mut writer).and_then(|value| {
        let file = writer
            .into_inner()
            .map_err(|err| err.into_error())
            .with_context(|| format!("cannot write {}", partial.display()))?;
        file.sync_all()
            .with_context(|| format!("cannot sync {}", partial.display()))?;
        Ok(value)
    });
    let value = match written {
        Ok(value) => value,
        Err(err) => {
            let _ = std::fs::remove_file(&partial);
            return Err(err);
        }
    };
    std::fs::rename(&partial, out)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), out.display()))?;
    sync_parent(out)?;
    Ok(value)
}

/// The directory holding `path` (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Makes a rename in `path`'s directory durable.
fn sync_parent(path: &Path) -> anyhow::Result<()> {
    let parent = parent_of(path);
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("cannot sync the directory {}", parent.display()))
}

/// Opens the store of a data directory that no server is running on.
fn open_stopped_store(dir: &Path, use_instead: &str) -> anyhow::Result<RedbStore> {
    if !dir.join(FILE_NAME).is_file() {
        return Err(BadInput(format!(
            "{} holds no aquatwin store (no {FILE_NAME})",
            dir.display()
        ))
        .into());
    }
    RedbStore::open(dir).map_err(|err| match err {
        StoreError::Locked { .. } => {
            BadInput(format!("{err}: a running server holds it; {use_instead}")).into()
        }
        err => {
            anyhow::Error::new(err).context(format!("cannot open the store in {}", dir.display()))
        }
    })
}

/// What a backup holds, for the closing line.
fn summary(header: &Header) -> String {
    format!(
        "{} records, {} bytes of keys and values, {} bytes in all, snapshot taken at {} (Unix \
         ms)",
        header.records,
        header.payload_bytes,
        header.file_len(),
        header.created_ms
    )
}

/// `aquatwin backup`.
pub fn run_backup(args: &BackupArgs) -> anyhow::Result<()> {
    let header = match (&args.url, &args.data) {
        (Some(url), _) => {
            let token = read_token(args.token_file.as_deref())?;
            client::download(url, &token, &args.out)?
        }
        (None, Some(data)) => backup_stopped(data, &args.out)?,
        (None, None) => return Err(BadInput("give --url or --data".into()).into()),
    };
    println!("wrote {}: {}", args.out.display(), summary(&header));
    Ok(())
}

/// The access token: the first line of `file`, else `$AQUATWIN_TOKEN`.
fn read_token(file: Option<&Path>) -> anyhow::Result<String> {
    let token = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|err| BadInput(format!("{}: cannot read the token: {err}", path.display())))?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
        None => std::env::var(TOKEN_ENV)
            .unwrap_or_default()
            .trim()
            .to_string(),
    };
    if token.is_empty() {
        return Err(BadInput(format!(
            "no access token: set {TOKEN_ENV} or give --token-file (a super_admin's token from \
             POST /api/v1/auth/login)"
        ))
        .into());
    }
    Ok(token)
}

/// `backup --data`: one snapshot of a stopped server's store.
fn backup_stopped(data: &Path, out: &Path) -> anyhow::Result<Header> {
    let store = open_stopped_store(
        data,
        "back it up through the server with `aquatwin backup --url http://HOST:PORT`",
    )?;
    let export = SnapshotExport::take(&store, crate::fleet::unix_ms())
        .with_context(|| format!("cannot read the store in {}", data.display()))?;
    let header = export.header();
    let mut progress = Progress::new("backup", header.records);
    write_atomically(out, |file| {
        export.write_to(file, &mut |records, bytes| progress.update(records, bytes))?;
        Ok(header)
    })
}

/// A backup file's problem as a user-facing error naming the file.
fn bad_file(file: &Path, err: FormatError) -> anyhow::Error {
    BadInput(format!(
        "{}: not a valid backup, refused: {err}",
        file.display()
    ))
    .into()
}

/// Opens `file` for reading as a backup, its length known.
fn open_backup(file: &Path) -> anyhow::Result<BackupReader<BufReader<File>>> {
    let opened = File::open(file)
        .map_err(|err| BadInput(format!("cannot open {}: {err}", file.display())))?;
    let len = opened
        .metadata()
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    BackupReader::new(BufReader::new(opened), Some(len)).map_err(|err| bad_file(file, err))
}

/// Reads all of `file`, checking structure, order, counts and checksum.
fn verify(file: &Path) -> anyhow::Result<Header> {
    let mut reader = open_backup(file)?;
    let mut progress = Progress::new("verify", reader.header().records);
    while reader
        .next_record()
        .map_err(|err| bad_file(file, err))?
        .is_some()
    {
        if reader.records_read().is_multiple_of(PROGRESS_EVERY) {
            progress.update(reader.records_read(), reader.bytes_read());
        }
    }
    Ok(reader.header())
}

/// Whether `dir` exists with something in it.
fn has_entries(dir: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(BadInput(format!("cannot read {}: {err}", dir.display())).into()),
    }
}

/// `aquatwin restore`.
pub fn run_restore(args: &RestoreArgs) -> anyhow::Result<()> {
    let header = verify(&args.file)?;
    let target = &args.data;
    if target.exists() && !target.is_dir() {
        return Err(BadInput(format!("{} is not a directory", target.display())).into());
    }
    let occupied = has_entries(target)?;
    if occupied && !args.force {
        return Err(BadInput(format!(
            "{} is not empty: restore into an empty directory, or give --force to replace it",
            target.display()
        ))
        .into());
    }
    if target.join(FILE_NAME).is_file() {
        // Only to learn whether a server holds it; the store is closed again at once.
        drop(open_stopped_store(
            target,
            "stop the server before restoring",
        )?);
    }
    let name = target
        .file_name()
        .ok_or_else(|| BadInput(format!("{} names no directory", target.display())))?
        .to_string_lossy()
        .into_owned();
    let parent = parent_of(target);
    let fresh = parent.join(format!(".{name}.restoring-{}", std::process::id()));
    if let Err(err) = fill_store(&args.file, &fresh, header) {
        let _ = std::fs::remove_dir_all(&fresh);
        return Err(err);
    }
    swap_into_place(
        &fresh,
        target,
        occupied,
        parent.join(format!(".{name}.replaced-{}", std::process::id())),
    )?;
    println!(
        "restored {} into {}: {}",
        args.file.display(),
        target.display(),
        summary(&header)
    );
    Ok(())
}

/// Writes every record of the (verified) backup `file` into a new store in `dir`, then checks
/// the store holds exactly as many keys.
fn fill_store(file: &Path, dir: &Path, header: Header) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot remove the leftover {}", dir.display()))?;
    }
    let store = RedbStore::open(dir)
        .with_context(|| format!("cannot create a store in {}", dir.display()))?;
    let mut reader = open_backup(file)?;
    let mut progress = Progress::new("restore", header.records);
    let mut batch = WriteBatch::new();
    let mut batch_bytes = 0usize;
    while let Some((key, value)) = reader.next_record().map_err(|err| bad_file(file, err))? {
        batch_bytes += key.len() + value.len();
        batch.put(key, value);
        if batch.len() >= RESTORE_BATCH_RECORDS || batch_bytes >= RESTORE_BATCH_BYTES {
            // Buffered: the last, durable commit below makes every earlier one durable too.
            store
                .write(std::mem::take(&mut batch), Durability::Buffered)
                .context("cannot write the restored store")?;
            batch_bytes = 0;
            progress.update(reader.records_read(), reader.bytes_read());
        }
    }
    store
        .write(batch, Durability::Durable)
        .context("cannot write the restored store")?;
    let mut stored = 0u64;
    store
        .snapshot()
        .and_then(|snapshot| {
            snapshot.for_each(&KeyRange::all(), &mut |_, _| {
                stored += 1;
                true
            })
        })
        .context("cannot read the restored store back")?;
    anyhow::ensure!(
        stored == header.records,
        "the restored store holds {stored} keys, the backup {}",
        header.records
    );
    Ok(())
}

/// Renames the complete store directory `fresh` to `target`; an `occupied` target is first set
/// aside as `aside` (and put back if the second rename fails), then removed.
fn swap_into_place(
    fresh: &Path,
    target: &Path,
    occupied: bool,
    aside: PathBuf,
) -> anyhow::Result<()> {
    let fail = |err: std::io::Error| {
        let _ = std::fs::remove_dir_all(fresh);
        anyhow::anyhow!(
            "cannot move the restored store to {}: {err}",
            target.display()
        )
    };
    if !occupied {
        // An empty directory is replaced by the rename itself.
        std::fs::rename(fresh, target).map_err(fail)?;
        return sync_parent(target);
    }
    std::fs::rename(target, &aside).map_err(fail)?;
    if let Err(err) = std::fs::rename(fresh, target) {
        let _ = std::fs::rename(&aside, target);
        return Err(fail(err));
    }
    sync_parent(target)?;
    std::fs::remove_dir_all(&aside)
        .with_context(|| format!("restored, but cannot remove the old {}", aside.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use twin::store::MemoryStore;

    fn read_back(bytes: &[u8]) -> Vec<twin::store::KeyValue> {
        let mut reader = BackupReader::new(bytes, Some(bytes.len() as u64)).unwrap();
        let mut pairs = Vec::new();
        while let Some(pair) = reader.next_record().unwrap() {
            pairs.push(pair);
        }
        pairs
    }

    /// Writes after the export was taken are not in it, on every backend.
    fn check_export_is_one_snapshot(store: &dyn Store) {
        let mut batch = WriteBatch::new();
        for i in 0..100u32 {
            batch.put(i.to_be_bytes().to_vec(), vec![1; i as usize]);
        }
        store.write(batch, Durability::Durable).unwrap();
        let expected = store
            .scan(&KeyRange::all(), twin::store::Order::Forward, None)
            .unwrap();
        let export = SnapshotExport::take(store, 42).unwrap();
        let mut later = WriteBatch::new();
        later.delete(0u32.to_be_bytes().to_vec());
        later.put(7u32.to_be_bytes().to_vec(), b"changed".to_vec());
        later.put(1000u32.to_be_bytes().to_vec(), b"new".to_vec());
        store.write(later, Durability::Durable).unwrap();
        let bytes = export.write_to(Vec::new(), &mut |_, _| {}).unwrap();
        assert_eq!(export.header().records, 100);
        assert_eq!(read_back(&bytes), expected);
    }

    #[test]
    fn an_export_is_one_snapshot_on_every_backend() {
        check_export_is_one_snapshot(&MemoryStore::new());
        let dir = std::env::temp_dir().join(format!("aquatwin-export-{}", std::process::id()));
        let store = RedbStore::open(&dir).unwrap();
        check_export_is_one_snapshot(&store);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
