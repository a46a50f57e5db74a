//! Bulk Data NDJSON into the pool: one resource per line, streamed, so a file larger
//! than memory is read a line at a time.

use serde_json::value::RawValue;

use super::heads::Head;
use super::scan::{resource_type, Origin};
use super::{ReadError, ResourcePool};

impl ResourcePool {
    /// Bulk Data NDJSON: one resource per line; blank lines are skipped. A bad line
    /// is a problem noted for that line, but a file in which no line is a FHIR
    /// resource is not FHIR at all ([`ReadError::NotFhir`], nothing added): a log or
    /// other JSON-lines file in an export directory is then one warning, not one per
    /// line.
    pub fn add_ndjson(&mut self, text: &str, origin: &str) -> Result<(), ReadError> {
        self.add_ndjson_reader(text.as_bytes(), origin)
    }

    /// [`Self::add_ndjson`] from a reader, one line in memory at a time.
    pub fn add_ndjson_reader(
        &mut self,
        mut reader: impl std::io::BufRead,
        origin: &str,
    ) -> Result<(), ReadError> {
        let mut problems = Vec::new();
        let mut resources = 0usize;
        let mut line = String::new();
        let mut n = 0usize;
        loop {
            line.clear();
            let read = reader
                .read_line(&mut line)
                .map_err(|source| ReadError::Io {
                    path: origin.into(),
                    source,
                })?;
            if read == 0 {
                break;
            }
            n += 1;
            self.stats.bytes += read;
            if line.trim().is_empty() {
                continue;
            }
            // A line the reader would skip (by its leading resourceType and codes)
            // is counted and left unparsed.
            if !self.would_keep(&line) {
                resources += 1;
                self.stats.resources += 1;
                continue;
            }
            match serde_json::from_str::<&RawValue>(&line) {
                Ok(raw) => {
                    let is_resource = resource_type(raw.get()).is_some()
                        || serde_json::from_str::<Head<'_>>(raw.get()).is_ok();
                    if is_resource {
                        resources += 1;
                        self.add_resource(raw.get(), None, &Origin::line(origin, n));
                    } else {
                        self.stats.resources += 1;
                        problems.push((n, "no resourceType".to_string()));
                    }
                }
                Err(e) => problems.push((n, format!("not valid JSON: {e}"))),
            }
        }
        if resources == 0 {
            if let Some((line, problem)) = problems.first() {
                return Err(ReadError::NotFhir {
                    path: origin.into(),
                    message: format!("no line is a FHIR resource (line {line}: {problem})"),
                });
            }
        }
        self.unattributed.extend(
            problems
                .into_iter()
                .map(|(line, problem)| format!("{origin}:{line}: {problem}")),
        );
        Ok(())
    }
}
