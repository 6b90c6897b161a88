//! The log channel: one JSON line per message, to stdout or appended to a file.
//!
//! File writes are fsynced before a delivery counts as done, with concurrent senders sharing
//! one fsync. If the process dies after the write but before the store marks the delivery
//! done, [`Log::written`] finds the line on the next start, so each delivery appears once.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::{DeliveryError, Outgoing};

/// Where the lines go.
#[derive(Debug, Clone)]
pub struct Log {
    file: Option<Arc<Appender>>,
}

#[derive(Debug)]
struct Appender {
    path: PathBuf,
    /// The file and the number of lines written to it.
    file: Mutex<(File, u64)>,
    /// Lines known to be on disk, and the handle used to sync.
    synced: Mutex<(File, u64)>,
}

impl Log {
    /// Stdout when `path` is `None`, else the file (created, appended to).
    ///
    /// # Errors
    /// The I/O error when the file cannot be opened.
    pub fn open(path: Option<&str>) -> std::io::Result<Log> {
        let Some(path) = path else {
            return Ok(Log { file: None });
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        // A line cut short by a crash must not swallow the next one.
        let len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        let sync = file.try_clone()?;
        Ok(Log {
            file: Some(Arc::new(Appender {
                path: PathBuf::from(path),
                file: Mutex::new((file, 0)),
                synced: Mutex::new((sync, 0)),
            })),
        })
    }

    /// Of `ids`, the deliveries whose line is already in the file (none for stdout).
    ///
    /// # Errors
    /// The I/O error when the file cannot be read.
    pub fn written(&self, ids: &[i64]) -> std::io::Result<HashSet<i64>> {
        let Some(a) = &self.file else {
            return Ok(HashSet::new());
        };
        let wanted: HashSet<i64> = ids.iter().copied().collect();
        let mut found = HashSet::new();
        if wanted.is_empty() {
            return Ok(found);
        }
        for line in BufReader::new(File::open(&a.path)?).lines() {
            let line = line?;
            let id = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v.get("delivery").and_then(serde_json::Value::as_i64));
            if let Some(id) = id.filter(|id| wanted.contains(id)) {
                found.insert(id);
            }
        }
        Ok(found)
    }

    /// The file, if this channel writes to one.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_deref().map(|a| a.path.as_path())
    }

    /// Writes the message as one line.
    ///
    /// # Errors
    /// a retryable [`DeliveryError`] when writing or syncing fails (a full disk may clear).
    pub async fn send(&self, msg: &Outgoing) -> Result<(), DeliveryError> {
        let mut line =
            serde_json::to_vec(msg).map_err(|e| DeliveryError::permanent(e.to_string()))?;
        line.push(b'\n');
        let Some(a) = self.file.clone() else {
            let mut out = std::io::stdout().lock();
            return out
                .write_all(&line)
                .and_then(|()| out.flush())
                .map_err(|e| DeliveryError::retryable(format!("writing to stdout: {e}")));
        };
        tokio::task::spawn_blocking(move || a.append(&line))
            .await
            .map_err(|e| DeliveryError::retryable(e.to_string()))?
            .map_err(|e| DeliveryError::retryable(format!("writing the log file: {e}")))
    }
}

impl Appender {
    fn append(&self, line: &[u8]) -> std::io::Result<()> {
        let mine = {
            let mut guard = self.file.lock().map_err(|_| poisoned())?;
            guard.0.write_all(line)?;
            guard.1 += 1;
            guard.1
        };
        // Group fsync: whoever holds `synced` syncs everything written so far, so a waiter
        // whose line is already covered returns without another fsync.
        let mut synced = self.synced.lock().map_err(|_| poisoned())?;
        if synced.1 >= mine {
            return Ok(());
        }
        let upto = self.file.lock().map_err(|_| poisoned())?.1;
        synced.0.sync_data()?;
        synced.1 = upto;
        Ok(())
    }
}

fn poisoned() -> std::io::Error {
    std::io::Error::other("log file lock poisoned")
}
