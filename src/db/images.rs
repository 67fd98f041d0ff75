//! The image catalog bty-web serves: images stored in its image store and remote-only entries
//! (a URL or `oras://` ref without local bytes).

use super::Db;
use crate::error::{Error, ErrorKind, Result};
use rusqlite::{params, OptionalExtension};

/// Where an entry's bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// In the image store (uploaded, or fetched from a URL by a job).
    Stored,
    /// Only at its remote `src`.
    Remote,
}

impl ImageKind {
    fn as_str(self) -> &'static str {
        match self {
            ImageKind::Stored => "stored",
            ImageKind::Remote => "remote",
        }
    }
}

/// One catalog row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    /// The binding id: content sha256 for uploads, `sha256(canonical src)` for URL entries.
    pub image_ref: String,
    /// Unique name (the file name in the store).
    pub name: String,
    /// Stored or remote.
    pub kind: ImageKind,
    /// Origin URL, for entries that came from one.
    pub src: Option<String>,
    /// Content sha256, when known.
    pub sha256: Option<String>,
    /// Catalog format id (`img.zst`), when known.
    pub format: Option<String>,
    /// Stored size.
    pub size_bytes: Option<u64>,
    /// Size of the disk image it expands to.
    pub virtual_size: Option<u64>,
    /// Architecture hint.
    pub arch: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// When it was added.
    pub created_at: String,
}

const COLUMNS: &str =
    "ref, name, kind, src, sha256, format, size_bytes, virtual_size, arch, description, created_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ImageRow> {
    let kind: String = r.get(2)?;
    let size: Option<i64> = r.get(6)?;
    let vsize: Option<i64> = r.get(7)?;
    Ok(ImageRow {
        image_ref: r.get(0)?,
        name: r.get(1)?,
        kind: if kind == "remote" { ImageKind::Remote } else { ImageKind::Stored },
        src: r.get(3)?,
        sha256: r.get(4)?,
        format: r.get(5)?,
        size_bytes: size.map(|s| s.max(0) as u64),
        virtual_size: vsize.map(|s| s.max(0) as u64),
        arch: r.get(8)?,
        description: r.get(9)?,
        created_at: r.get(10)?,
    })
}

impl Db {
    /// Adds an entry; a duplicate ref or name is a conflict, and so is a stored entry whose
    /// bytes are stored already (by an upload or a fetch, whose refs differ): the check and the
    /// insert are one transaction, so two of them storing the same bytes at once leave one.
    pub fn insert_image(&self, row: &ImageRow) -> Result<()> {
        let mut holder: Option<String> = None;
        self.write(|c| {
            let tx = c.transaction()?;
            holder = match (&row.kind, &row.sha256) {
                (ImageKind::Stored, Some(sha)) => tx
                    .query_row(
                        "SELECT name FROM images WHERE kind = 'stored' AND sha256 = ?1 LIMIT 1",
                        [sha],
                        |r| r.get(0),
                    )
                    .optional()?,
                _ => None,
            };
            if holder.is_some() {
                return Ok(());
            }
            tx.execute(
                &format!(
                    "INSERT INTO images ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ),
                params![
                    row.image_ref,
                    row.name,
                    row.kind.as_str(),
                    row.src,
                    row.sha256,
                    row.format,
                    row.size_bytes.map(|s| s as i64),
                    row.virtual_size.map(|s| s as i64),
                    row.arch,
                    row.description,
                    row.created_at
                ],
            )?;
            tx.commit()
        })?;
        match holder {
            Some(name) => {
                Err(Error::new(ErrorKind::Conflict, format!("the same bytes are stored as {name:?}")))
            }
            None => Ok(()),
        }
    }

    /// Every entry, by name.
    pub fn images(&self) -> Result<Vec<ImageRow>> {
        self.with(|c| {
            let mut st = c.prepare(&format!("SELECT {COLUMNS} FROM images ORDER BY name"))?;
            let rows = st.query_map([], from_row)?.collect();
            rows
        })
    }

    /// The entry with this ref.
    pub fn image(&self, image_ref: &str) -> Result<Option<ImageRow>> {
        self.with(|c| {
            c.query_row(&format!("SELECT {COLUMNS} FROM images WHERE ref = ?1"), [image_ref], from_row)
                .optional()
        })
    }

    /// The entry with this name.
    pub fn image_by_name(&self, name: &str) -> Result<Option<ImageRow>> {
        self.with(|c| {
            c.query_row(&format!("SELECT {COLUMNS} FROM images WHERE name = ?1"), [name], from_row).optional()
        })
    }

    /// Removes an entry; whether it existed.
    pub fn delete_image(&self, image_ref: &str) -> Result<bool> {
        self.write(|c| c.execute("DELETE FROM images WHERE ref = ?1", [image_ref]).map(|n| n > 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_insert_list_and_refuse_duplicate_names() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("state.db")).unwrap();
        let row = ImageRow {
            image_ref: "a".repeat(64),
            name: "x.img".into(),
            kind: ImageKind::Stored,
            src: None,
            sha256: Some("a".repeat(64)),
            format: Some("img".into()),
            size_bytes: Some(5),
            virtual_size: Some(5),
            arch: None,
            description: None,
            created_at: super::super::now(),
        };
        db.insert_image(&row).unwrap();
        let mut dup = row.clone();
        dup.image_ref = "b".repeat(64);
        assert_eq!(db.insert_image(&dup).unwrap_err().kind(), crate::ErrorKind::Conflict);
        // The same bytes under another ref and name (a fetch's ref is its URL's digest).
        let mut fetched = row.clone();
        (fetched.image_ref, fetched.name) = ("c".repeat(64), "y.img".into());
        let e = db.insert_image(&fetched).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Conflict);
        assert_eq!(e.to_string(), "the same bytes are stored as \"x.img\"");
        assert_eq!(db.images().unwrap(), vec![row.clone()]);
        assert_eq!(db.image_by_name("x.img").unwrap(), Some(row.clone()));
        assert!(db.delete_image(&row.image_ref).unwrap());
        assert!(db.image(&row.image_ref).unwrap().is_none());
    }
}
