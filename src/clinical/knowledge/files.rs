//! Where knowledge files come from: the copies embedded at build time, optionally
//! overlaid by a hospital's own directory (same relative paths replace, new ones add).

use std::{collections::BTreeMap, fs, path::Path};

use super::KnowledgeError;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_profiles.rs"));
}

/// The knowledge files by relative path (`knowledge/antidepressants.toml`,
/// `valuesets/ValueSet-dx-bipolar.json`, ...).
#[derive(Debug, Clone, Default)]
pub struct ProfileFiles {
    files: BTreeMap<String, String>,
}

impl ProfileFiles {
    /// The files shipped inside the binary.
    pub fn embedded() -> Self {
        let files = embedded::EMBEDDED
            .iter()
            .map(|(path, text)| (path.to_string(), text.to_string()))
            .collect();
        Self { files }
    }

    /// The embedded files, with every `.json`/`.toml`/`.csv` file under `dir` replacing the
    /// embedded file of the same relative path (or adding to them).
    pub fn embedded_with_overrides(dir: &Path) -> Result<Self, KnowledgeError> {
        let mut profiles = Self::embedded();
        profiles.overlay(dir, dir)?;
        Ok(profiles)
    }

    fn overlay(&mut self, root: &Path, dir: &Path) -> Result<(), KnowledgeError> {
        let io_err = |path: &Path, source| KnowledgeError::Io {
            file: path.display().to_string(),
            source,
        };
        for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let path = entry.map_err(|e| io_err(dir, e))?.path();
            if path.is_dir() {
                self.overlay(root, &path)?;
                continue;
            }
            if !matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("json" | "toml" | "csv")
            ) {
                continue;
            }
            let text = fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
            let rel = path.strip_prefix(root).unwrap_or(&path);
            self.files
                .insert(rel.to_string_lossy().replace('\\', "/"), text);
        }
        Ok(())
    }

    /// One file's text; missing files are an error naming the path.
    pub fn get(&self, path: &str) -> Result<&str, KnowledgeError> {
        self.files
            .get(path)
            .map(String::as_str)
            .ok_or_else(|| KnowledgeError::Missing {
                file: path.to_string(),
            })
    }

    /// Files under one folder, e.g. `valuesets/`, in path order.
    pub fn under<'a>(&'a self, folder: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.files
            .iter()
            .filter(move |(path, _)| path.starts_with(folder))
            .map(|(path, text)| (path.as_str(), text.as_str()))
    }

    /// Replaces one file's text (tests and callers that build knowledge in memory).
    pub fn set(&mut self, path: &str, text: impl Into<String>) {
        self.files.insert(path.to_string(), text.into());
    }
}
