//! Writing outputs so that an interrupted or failed run never leaves a
//! half-written file or directory: everything goes to a temporary sibling first,
//! then is renamed into place; the temporary is removed on any error.

use anyhow::{Context, Result};
use camino::{Utf8Path, Utf8PathBuf};

/// The temporary sibling of `dest` (same directory, so the rename is atomic).
fn temp_sibling(dest: &Utf8Path) -> Result<Utf8PathBuf> {
    let dir = dest.parent().context("destination has no parent directory")?;
    let name = dest.file_name().context("destination has no file name")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating directory {dir}"))?;
    Ok(dir.join(format!(".{name}.tmp-{}", std::process::id())))
}

/// Write `bytes` to `dest` atomically; `executable` sets mode 0755 before the rename.
pub fn write(dest: &Utf8Path, bytes: &[u8], executable: bool) -> Result<()> {
    let tmp = temp_sibling(dest)?;
    let result = (|| {
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {tmp}"))?;
        if executable {
            set_executable(&tmp)?;
        }
        std::fs::rename(&tmp, dest).with_context(|| format!("renaming {tmp} to {dest}"))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Write `dest` atomically through `fill`, which streams into a buffered file (large outputs).
pub fn write_with(dest: &Utf8Path, fill: impl FnOnce(&mut dyn std::io::Write) -> Result<()>) -> Result<()> {
    use std::io::Write;
    let tmp = temp_sibling(dest)?;
    let result = (|| {
        let file = std::fs::File::create(&tmp).with_context(|| format!("creating {tmp}"))?;
        let mut w = std::io::BufWriter::new(file);
        fill(&mut w)?;
        w.flush().with_context(|| format!("writing {tmp}"))?;
        std::fs::rename(&tmp, dest).with_context(|| format!("renaming {tmp} to {dest}"))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Fill a fresh temporary directory with `fill`, then replace `dest` with it.
pub fn replace_dir(dest: &Utf8Path, fill: impl FnOnce(&Utf8Path) -> Result<()>) -> Result<()> {
    let tmp = temp_sibling(dest)?;
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing stale {tmp}"))?;
    }
    let result = (|| {
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {tmp}"))?;
        fill(&tmp)?;
        if dest.exists() {
            std::fs::remove_dir_all(dest).with_context(|| format!("replacing {dest}"))?;
        }
        std::fs::rename(&tmp, dest).with_context(|| format!("moving {tmp} to {dest}"))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

#[cfg(unix)]
fn set_executable(path: &Utf8Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {path} executable"))
}

#[cfg(not(unix))]
fn set_executable(_: &Utf8Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_fill_leaves_neither_temp_nor_partial_output() {
        let t = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(t.path().to_path_buf()).unwrap();
        let dest = root.join("layout");
        let err = replace_dir(&dest, |tmp| {
            std::fs::write(tmp.join("half"), b"x")?;
            anyhow::bail!("killed halfway")
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0, "something was left behind");
        write(&root.join("f.sh"), b"echo", true).unwrap();
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
    }
}
