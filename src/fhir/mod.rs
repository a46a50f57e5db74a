//! FHIR at the edges: reading bundles and bulk files, mapping resources to the
//! engine's record, and talking to the EHR (client, auth, gathering, write-back).

pub mod bulk;
pub mod client;
pub mod document;
pub mod gather;
pub mod mapping;
pub mod read;
pub mod urn;
pub mod writeback;
