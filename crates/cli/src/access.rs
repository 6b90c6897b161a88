//! Whether a local user can read or write a file, from the file's mode bits and the user's
//! groups in `/etc/passwd` and `/etc/group`: what `report --check --as USER` and `report`'s
//! warnings use to tell whether the hook's user can use the spool and the key.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use anyhow::{Context as _, bail};

/// A local user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name (or the uid, when it has none).
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary and supplementary groups.
    pub groups: Vec<u32>,
}

/// What a user needs of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read a file.
    Read,
    /// List, create and remove entries of a directory.
    WriteDir,
}

/// `(name, uid, gid)` of every entry of `/etc/passwd`.
fn passwd() -> anyhow::Result<Vec<(String, u32, u32)>> {
    let text = fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4).then_some(())?;
            Some((f[0].to_owned(), f[2].parse().ok()?, f[3].parse().ok()?))
        })
        .collect())
}

impl User {
    /// A user with its supplementary groups from `/etc/group`.
    fn with_groups(name: String, uid: u32, gid: u32) -> User {
        let mut groups = vec![gid];
        let group = fs::read_to_string("/etc/group").unwrap_or_default();
        for l in group.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 4
                && f[3].split(',').any(|m| m == name)
                && let Ok(g) = f[2].parse()
            {
                groups.push(g);
            }
        }
        User { name, uid, groups }
    }

    /// The user named `name`, from `/etc/passwd` and `/etc/group`.
    ///
    /// # Errors
    /// When there is no such user or the files cannot be read.
    pub fn named(name: &str) -> anyhow::Result<User> {
        match passwd()?.into_iter().find(|(n, _, _)| n == name) {
            Some((name, uid, gid)) => Ok(User::with_groups(name, uid, gid)),
            None => bail!("there is no user `{name}` in /etc/passwd"),
        }
    }

    /// The user owning `path` (the spool directory: the hook's user); named by its uid
    /// when `/etc/passwd` has no entry for it.
    ///
    /// # Errors
    /// When the path cannot be read.
    pub fn owner_of(path: &Path) -> anyhow::Result<User> {
        let meta = fs::metadata(path).with_context(|| format!("reading `{}`", path.display()))?;
        let entry = passwd()
            .unwrap_or_default()
            .into_iter()
            .find(|(_, uid, _)| *uid == meta.uid());
        Ok(match entry {
            Some((name, uid, gid)) => User::with_groups(name, uid, gid),
            None => User {
                name: meta.uid().to_string(),
                uid: meta.uid(),
                groups: vec![meta.gid()],
            },
        })
    }

    /// The user this process runs as.
    ///
    /// # Errors
    /// When `/proc/self` cannot be read.
    pub fn current() -> anyhow::Result<User> {
        User::owner_of(Path::new("/proc/self"))
    }

    /// Whether this user can do `need` with `path` (root can do anything).
    pub fn can(&self, path: &Path, need: Need) -> bool {
        let Ok(meta) = fs::metadata(path) else {
            return false;
        };
        if self.uid == 0 {
            return true;
        }
        let mode = meta.mode();
        let bits = if meta.uid() == self.uid {
            (mode >> 6) & 0o7
        } else if self.groups.contains(&meta.gid()) {
            (mode >> 3) & 0o7
        } else {
            mode & 0o7
        };
        match need {
            Need::Read => bits & 0o4 != 0,
            Need::WriteDir => bits & 0o3 == 0o3,
        }
    }
}
