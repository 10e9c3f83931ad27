//! Salesforce pages → Arrow record batches, typed by the describe.
//!
//! Pages arrive in the *wire* shape of the API that produced them (Bulk CSV selects compound
//! components and sends times as text; REST JSON nests addresses and relationships). A
//! [`WirePlan`] says what to select, how to decode it, and how to assemble the stream's schema
//! from the wire columns. Values are decoded to the exact wire schema, never inferred (digit-only
//! strings stay strings, "NA" stays "NA"): REST JSON by arrow-json, Bulk CSV by sfetl's own
//! splitter and column builders (`csv`, `fields`, `columns`), with fast paths for Salesforce's fixed
//! datetime, date and decimal formats (`text`) and arrow's parsers for anything else.

mod blocks;
mod columns;
mod csv;
mod fields;
mod json;
mod pipeline;
mod plan;
mod text;

pub use csv::CsvPageDecoder;
pub use json::{decode_rest_records, remove_nul};
pub use pipeline::{DecodedPage, PageError, PageEvent};
pub use plan::{Api, WirePlan};

/// Why a page could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Arrow rejected a value (a number that is not a number, a malformed date...).
    #[error("cannot decode {object} data: {reason}")]
    Arrow {
        /// Object being read.
        object: String,
        /// Arrow's message.
        reason: String,
    },
    /// The page's columns are not what was selected.
    #[error("{object}: Salesforce answered with columns {found:?} but sfetl selected {expected:?}")]
    Header {
        /// Object being read.
        object: String,
        /// What was selected.
        expected: Vec<String>,
        /// What came.
        found: Vec<String>,
    },
}

#[cfg(test)]
mod tests;
