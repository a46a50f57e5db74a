//! The few fields read before a resource is typed: its type and id, a bundle's
//! entries as raw JSON, an Observation's or Encounter's codes, who it is about.
//! Borrowed from the input where it can be, so skipping costs no allocation.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
pub(super) struct Head<'a> {
    #[serde(rename = "resourceType", borrow)]
    pub(super) resource_type: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(super) id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct BundleBody<'a> {
    #[serde(borrow, default)]
    pub(super) entry: Vec<RawEntry<'a>>,
}

#[derive(Deserialize)]
pub(super) struct RawEntry<'a> {
    #[serde(rename = "fullUrl", borrow, default)]
    pub(super) full_url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) resource: Option<&'a RawValue>,
}

#[derive(Deserialize)]
pub(super) struct ObservationHead<'a> {
    #[serde(borrow, default)]
    pub(super) code: Option<ConceptHead<'a>>,
    /// A panel is wanted when one of its components is (PHQ-9 item 9 in a panel).
    #[serde(borrow, default)]
    pub(super) component: Vec<ComponentHead<'a>>,
}

/// A Condition's or Procedure's code.
#[derive(Deserialize)]
pub(super) struct CodedHead<'a> {
    #[serde(borrow, default)]
    pub(super) code: Option<ConceptHead<'a>>,
}

#[derive(Deserialize)]
pub(super) struct ComponentHead<'a> {
    #[serde(borrow, default)]
    pub(super) code: Option<ConceptHead<'a>>,
}

#[derive(Deserialize)]
pub(super) struct EncounterHead<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(super) types: Vec<ConceptHead<'a>>,
}

#[derive(Deserialize)]
pub(super) struct ConceptHead<'a> {
    #[serde(borrow, default)]
    pub(super) coding: Vec<CodingHead<'a>>,
}

#[derive(Deserialize)]
pub(super) struct CodingHead<'a> {
    #[serde(borrow, default)]
    pub(super) system: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) code: Option<Cow<'a, str>>,
}

/// Who a resource is about, read without typing the rest (for unreadable ones).
#[derive(Deserialize)]
pub(super) struct SubjectHead {
    #[serde(default)]
    pub(super) subject: Option<ReferenceHead>,
    #[serde(default)]
    pub(super) patient: Option<ReferenceHead>,
}

#[derive(Deserialize)]
pub(super) struct ReferenceHead {
    pub(super) reference: Option<String>,
}
