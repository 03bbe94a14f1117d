//! The `file://DIR` destination: each object becomes `DIR/<key>`, written through a hidden
//! temporary file, fsynced, checked against the SHA-256 of what was read, and linked into place
//! with `link()`, which fails rather than replace an existing file (the local `If-None-Match`).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::fault::Fault;
use super::object::{ObjectSpec, Stored, hex};
use crate::spool::fsync_dir;

#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

fn io_fault(what: String, e: io::Error) -> Fault {
    let msg = format!("{what}: {e}");
    match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            Fault::Permanent(msg)
        }
        _ => Fault::Transient(msg),
    }
}

impl DirStore {
    pub fn new(root: PathBuf) -> DirStore {
        DirStore { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dest(&self, key: &str) -> Result<PathBuf, Fault> {
        let rel = Path::new(key);
        if key.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(Fault::Conflict(format!(
                "key {key:?} is not a plain relative path"
            )));
        }
        Ok(self.root.join(rel))
    }

    /// Copies `src` in under `spec.key`. A file whose bytes differ from `spec.known_sha256` is
    /// a conflict, found once the copy has read them.
    pub fn put_file(&self, src: &Path, spec: &ObjectSpec) -> Result<Stored, Fault> {
        let mut input =
            File::open(src).map_err(|e| io_fault(format!("opening {}", src.display()), e))?;
        let stored = self.put_from(&mut input, &spec.key, &src.display().to_string())?;
        match spec.known_sha256 {
            Some(sha) if sha != stored.sha256 => Err(Fault::Conflict(format!(
                "sha256 {} differs from the manifest's {}",
                hex(&stored.sha256),
                hex(&sha)
            ))),
            _ => Ok(stored),
        }
    }

    pub fn put_bytes(&self, bytes: &[u8], spec: &ObjectSpec) -> Result<Stored, Fault> {
        self.put_from(&mut &bytes[..], &spec.key, "manifest")
    }

    fn put_from(&self, input: &mut dyn Read, key: &str, what: &str) -> Result<Stored, Fault> {
        let dest = self.dest(key)?;
        let parent = dest.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&parent)
            .map_err(|e| io_fault(format!("creating {}", parent.display()), e))?;
        let file_name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // One fixed temporary name per key: a crashed run's leftover is simply overwritten.
        let tmp = parent.join(format!(".{file_name}.partial"));
        let result = copy_hashed(input, &tmp, what).and_then(|(size, sha256)| {
            let on_disk = hash_file(&tmp)?;
            if on_disk != (size, sha256) {
                return Err(Fault::Transient(format!(
                    "{} does not hold what was read from {what} (size or sha256 differ)",
                    tmp.display()
                )));
            }
            let already_there = link_new(&tmp, &dest, size, sha256)?;
            fsync_dir(&parent).map_err(|e| io_fault(format!("fsync {}", parent.display()), e))?;
            Ok(Stored {
                size,
                sha256,
                already_there,
            })
        });
        let _ = fs::remove_file(&tmp);
        result
    }
}

fn copy_hashed(input: &mut dyn Read, tmp: &Path, what: &str) -> Result<(u64, [u8; 32]), Fault> {
    let mut out =
        File::create(tmp).map_err(|e| io_fault(format!("creating {}", tmp.display()), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_fault(format!("reading {what}"), e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| io_fault(format!("writing {}", tmp.display()), e))?;
        size += n as u64;
    }
    out.sync_all()
        .map_err(|e| io_fault(format!("fsync {}", tmp.display()), e))?;
    Ok((size, hasher.finalize().into()))
}

fn hash_file(path: &Path) -> Result<(u64, [u8; 32]), Fault> {
    let mut f = File::open(path).map_err(|e| io_fault(format!("opening {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    let size = io::copy(&mut f, &mut hasher)
        .map_err(|e| io_fault(format!("reading {}", path.display()), e))?;
    Ok((size, hasher.finalize().into()))
}

/// Links `tmp` to `dest` unless `dest` exists. Returns whether an identical `dest` was already
/// there; a different one is a conflict.
fn link_new(tmp: &Path, dest: &Path, size: u64, sha256: [u8; 32]) -> Result<bool, Fault> {
    match fs::hard_link(tmp, dest) {
        Ok(()) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let (have_size, have_sha) = hash_file(dest)?;
            if (have_size, have_sha) == (size, sha256) {
                Ok(true)
            } else {
                Err(Fault::Conflict(format!(
                    "{} already exists with different content ({have_size} bytes, sha256 {}; ours: {size} bytes, sha256 {})",
                    dest.display(),
                    hex(&have_sha),
                    hex(&sha256)
                )))
            }
        }
        Err(e) => Err(io_fault(format!("linking {}", dest.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: &str) -> ObjectSpec {
        ObjectSpec {
            key: key.into(),
            content_type: "video/mp4",
            metadata: Default::default(),
            known_sha256: None,
        }
    }

    #[test]
    fn copies_once_and_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::new(tmp.path().join("out"));
        let src = tmp.path().join("a.mp4");
        fs::write(&src, b"hello world").unwrap();
        let first = store.put_file(&src, &spec("x/y/a.mp4")).unwrap();
        assert!(!first.already_there);
        assert_eq!(first.size, 11);
        assert_eq!(
            fs::read(tmp.path().join("out/x/y/a.mp4")).unwrap(),
            b"hello world"
        );
        let again = store.put_file(&src, &spec("x/y/a.mp4")).unwrap();
        assert!(again.already_there);
        assert_eq!(again.sha256, first.sha256);
        fs::write(&src, b"other bytes").unwrap();
        let err = store.put_file(&src, &spec("x/y/a.mp4")).unwrap_err();
        assert!(matches!(err, Fault::Conflict(_)), "{err:?}");
        assert_eq!(
            fs::read(tmp.path().join("out/x/y/a.mp4")).unwrap(),
            b"hello world"
        );
        let leftovers: Vec<_> = fs::read_dir(tmp.path().join("out/x/y")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary files left behind");
        // Bytes that are not the ones the manifest names are a conflict too.
        let promised = ObjectSpec {
            known_sha256: Some(first.sha256),
            ..spec("x/z/b.mp4")
        };
        let err = store.put_file(&src, &promised).unwrap_err();
        assert!(
            matches!(err, Fault::Conflict(ref m) if m.contains("manifest")),
            "{err:?}"
        );
    }

    #[test]
    fn rejects_escaping_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirStore::new(tmp.path().to_path_buf());
        assert!(store.put_bytes(b"x", &spec("../evil")).is_err());
        assert!(store.put_bytes(b"x", &spec("/abs")).is_err());
    }
}
