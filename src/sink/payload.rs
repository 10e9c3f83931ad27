//! What one route sends and what comes back: the [`Operation`], the rows formatted as
//! Salesforce text ([`Payload`]) and one [`Outcome`] per row. The transports (`collections`,
//! `bulk`) and `apply` share these types, so they sit below all of them.

use arrow::array::{Array, StringArray};

/// What a route does to Salesforce records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Create records (no Id).
    Insert,
    /// Change records by Id.
    Update,
    /// Create or change records matched on an external id field.
    Upsert,
    /// Move records to the recycle bin by Id.
    Delete,
}

impl Operation {
    /// The Bulk API 2.0 `operation` value (also used in messages and the rejects file).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Upsert => "upsert",
            Operation::Delete => "delete",
        }
    }

    /// The operation a config names (`insert`, `update`, `upsert`, `delete`).
    pub fn parse(s: &str) -> Option<Operation> {
        match s {
            "insert" => Some(Operation::Insert),
            "update" => Some(Operation::Update),
            "upsert" => Some(Operation::Upsert),
            "delete" => Some(Operation::Delete),
            _ => None,
        }
    }
}

/// What happened to one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Salesforce applied it.
    Applied,
    /// Salesforce refused it.
    Failed {
        /// Salesforce's error code (`STRING_TOO_LONG`, ...).
        code: String,
        /// Salesforce's message.
        message: String,
    },
}

/// The rows of one route, formatted for Salesforce.
pub struct Payload<'a> {
    /// Object API name.
    pub object: &'a str,
    /// Operation.
    pub operation: Operation,
    /// External id field (upsert).
    pub external_id: Option<&'a str>,
    /// (field name, Salesforce type) per column.
    pub fields: Vec<(&'a str, &'a str)>,
    /// One text column per field (null = clear the field).
    pub values: &'a [StringArray],
}

impl Payload<'_> {
    /// Rows in the payload.
    pub fn len(&self) -> usize {
        self.values.first().map(|v| v.len()).unwrap_or(0)
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The columns sent: delete sends only Id.
    pub fn columns(&self) -> Vec<usize> {
        (0..self.fields.len())
            .filter(|&c| {
                self.operation != Operation::Delete || self.fields[c].0.eq_ignore_ascii_case("Id")
            })
            .collect()
    }

    /// Row `row`'s value of column `col`.
    pub fn value(&self, col: usize, row: usize) -> Option<&str> {
        let a = &self.values[col];
        a.is_valid(row).then(|| a.value(row))
    }
}
