//! The source: discover the org's objects and read the selected streams.

pub mod cursor;
pub mod soql;
