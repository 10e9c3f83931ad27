//! Joins of names that come from outside (catalog stream names, sync ids, file names) onto a
//! root that sfetl owns, refused when the result would leave the root.
//!
//! Why a lexical check and not `canonicalize`: the files joined to often do not exist yet, and
//! object-store keys have no filesystem to ask. A name is accepted only when every component is
//! a plain name (no `..`, no root, no drive or prefix, no empty or `.` segments, no NUL), so the
//! joined path is the root followed by exactly those names and nothing else. Symbolic links
//! inside the root are not followed or checked: sfetl creates the folders it writes into.

use std::path::{Component, Path, PathBuf};

/// Why a relative name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{relative:?} cannot be used under {root}: {reason}; names joined onto the output folder must be plain names separated by '/'"
)]
pub struct UnsafePath {
    /// The root it was to be joined to, for messages.
    pub root: String,
    /// The name as given.
    pub relative: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The plain components of `relative` (split on `/`, and on `\` too, which Windows treats as a
/// separator), or why one of them is not plain.
fn plain_parts(relative: &str) -> Result<Vec<&str>, &'static str> {
    if relative.is_empty() {
        return Err("it is empty");
    }
    if relative.contains('\0') {
        return Err("it contains a NUL byte");
    }
    if relative.starts_with('/') || relative.starts_with('\\') {
        return Err("it is an absolute path");
    }
    let mut parts = Vec::new();
    for part in relative.split(['/', '\\']) {
        match part {
            "" => return Err("it has an empty component (a doubled or trailing '/')"),
            "." => return Err("it has a '.' component"),
            ".." => return Err("it has a '..' component, which would leave the folder"),
            p if p.contains(':') && cfg!(windows) => return Err("it names a drive"),
            p => parts.push(p),
        }
    }
    // Belt and braces: what std makes of it must be only normal components as well.
    if Path::new(relative)
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err("it is not a relative path of plain names");
    }
    Ok(parts)
}

/// `root` joined with `relative` (`"Account/20240101T000000Z-ab12/part-00000.parquet"`), or an
/// error when `relative` could name anything outside `root`.
pub fn safe_join(root: &Path, relative: &str) -> Result<PathBuf, UnsafePath> {
    let parts = plain_parts(relative).map_err(|reason| UnsafePath {
        root: root.display().to_string(),
        relative: relative.to_string(),
        reason,
    })?;
    let mut out = root.to_path_buf();
    out.extend(parts);
    debug_assert!(out.starts_with(root));
    Ok(out)
}

/// The object-store key `prefix/relative` (no leading or trailing `/` on the result), under the
/// same rule as [`safe_join`]; `prefix` may be empty (the bucket root).
pub fn safe_join_key(prefix: &str, relative: &str) -> Result<String, UnsafePath> {
    let parts = plain_parts(relative).map_err(|reason| UnsafePath {
        root: if prefix.is_empty() {
            "the bucket root".to_string()
        } else {
            prefix.to_string()
        },
        relative: relative.to_string(),
        reason,
    })?;
    let prefix = prefix.trim_matches('/');
    let mut key = String::from(prefix);
    for part in parts {
        if !key.is_empty() {
            key.push('/');
        }
        key.push_str(part);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_join_under_the_root() {
        let root = Path::new("/data/export");
        assert_eq!(
            safe_join(root, "Account").unwrap(),
            PathBuf::from("/data/export/Account")
        );
        assert_eq!(
            safe_join(root, "Account/20240101-ab/part-00000.parquet").unwrap(),
            PathBuf::from("/data/export/Account/20240101-ab/part-00000.parquet")
        );
        assert_eq!(
            safe_join(root, "Score__c/x/part-00001.parquet#1").unwrap(),
            PathBuf::from("/data/export/Score__c/x/part-00001.parquet#1")
        );
        assert_eq!(
            safe_join_key("bucket/prefix/", "Account/s1/part-00000.parquet").unwrap(),
            "bucket/prefix/Account/s1/part-00000.parquet"
        );
        assert_eq!(safe_join_key("", "Account").unwrap(), "Account");
    }

    #[test]
    fn names_that_leave_the_root_are_refused() {
        let root = Path::new("/data/export");
        let refused = |rel: &str| safe_join(root, rel).unwrap_err().reason;
        let traversal = "../../../../services/data/v62.0/sobjects/Account";
        assert_eq!(
            refused(traversal),
            "it has a '..' component, which would leave the folder"
        );
        assert_eq!(
            refused("Account/../../etc"),
            "it has a '..' component, which would leave the folder"
        );
        assert_eq!(
            refused("..\\..\\x"),
            "it has a '..' component, which would leave the folder"
        );
        assert_eq!(refused("/etc/passwd"), "it is an absolute path");
        assert_eq!(refused("\\\\server\\share"), "it is an absolute path");
        assert_eq!(refused(""), "it is empty");
        assert_eq!(refused("./Account"), "it has a '.' component");
        assert_eq!(
            refused("Account//x"),
            "it has an empty component (a doubled or trailing '/')"
        );
        assert_eq!(
            refused("Account/"),
            "it has an empty component (a doubled or trailing '/')"
        );
        assert_eq!(refused("a\0b"), "it contains a NUL byte");
        assert_eq!(
            safe_join_key("p", "../q").unwrap_err().to_string(),
            "\"../q\" cannot be used under p: it has a '..' component, which would leave the folder; names joined onto the output folder must be plain names separated by '/'"
        );
    }
}
