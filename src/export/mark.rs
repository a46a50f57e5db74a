//! `--since last`: the previous export's `transactionTime`, kept where the next run
//! finds it: in the broker when the export queues (any pod can run the nightly job),
//! else in `export.state_file`. Saved only after the export was handed on, so a run
//! that failed half-way is repeated from the same point.

use std::path::Path;

use super::ExportError;
use crate::queue::Rabbit;

pub enum MarkStore<'a> {
    File(&'a Path),
    Broker(&'a Rabbit),
}

impl MarkStore<'_> {
    fn describe(&self) -> String {
        match self {
            MarkStore::File(path) => path.display().to_string(),
            MarkStore::Broker(rabbit) => format!("broker queue {}", rabbit.export_mark_queue()),
        }
    }

    /// The previous run's transactionTime, checked to be a FHIR instant.
    pub async fn load(&self) -> Result<String, ExportError> {
        let text = match self {
            MarkStore::File(path) => match std::fs::read_to_string(path) {
                Ok(text) => Some(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(ExportError::Mark(format!("{}: {e}", path.display()))),
            },
            MarkStore::Broker(rabbit) => rabbit
                .export_mark()
                .await?
                .map(|body: Vec<u8>| String::from_utf8_lossy(&body).into_owned()),
        };
        let Some(text) = text else {
            return Err(ExportError::NoEarlierExport(self.describe()));
        };
        let instant = text.trim().to_string();
        time::OffsetDateTime::parse(&instant, &time::format_description::well_known::Rfc3339)
            .map_err(|_| {
                ExportError::Mark(format!("{} does not hold a FHIR instant", self.describe()))
            })?;
        Ok(instant)
    }

    pub async fn save(&self, transaction_time: &str) -> Result<(), ExportError> {
        match self {
            MarkStore::File(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| ExportError::Mark(format!("{}: {e}", parent.display())))?;
                }
                let temporary = path.with_extension("tmp");
                std::fs::write(&temporary, transaction_time)
                    .and_then(|()| std::fs::rename(&temporary, path))
                    .map_err(|e| ExportError::Mark(format!("{}: {e}", path.display())))
            }
            MarkStore::Broker(rabbit) => {
                Ok(rabbit.save_export_mark(transaction_time.as_bytes()).await?)
            }
        }
    }
}
