//! A secret (token, key, password) that never prints: not in Debug, not in logs.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret that never prints.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

/// A secret file larger than this is not a secret but a mistake (a log, a device).
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// A secret from a file (Kubernetes mounts them so), trimmed; at most
    /// `MAX_SECRET_FILE_BYTES` are read, so a path to a device or a huge file cannot
    /// stall or exhaust the process.
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        use std::io::Read;
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_SECRET_FILE_BYTES + 1).read_to_string(&mut text))
            .map_err(|e| e.to_string())?;
        if text.len() as u64 > MAX_SECRET_FILE_BYTES {
            return Err(format!("larger than {MAX_SECRET_FILE_BYTES} bytes"));
        }
        Ok(Self(text.trim().to_string()))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Printed configurations show that a secret is set, never what it is.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// Environment values that look like numbers (a numeric token) are still secrets.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            Text(String),
            Integer(i64),
            Float(f64),
        }
        Ok(Secret(match Scalar::deserialize(d)? {
            Scalar::Text(s) => s,
            Scalar::Integer(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
        }))
    }
}
