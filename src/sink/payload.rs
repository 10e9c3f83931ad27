//! What one route sends and what comes back: the [`Operation`], the rows formatted as
//! Salesforce text ([`Payload`]) and one [`Outcome`] per row. The transports (`collections`,
//! `bulk`) and `apply` share these types, so they sit below all of them.

use arrow::array::{Array, StringArray};

/// Reject code of a row holding the literal text `#N/A` (see [`Payload::literal_na`]).
pub const LITERAL_NA: &str = "SFETL_LITERAL_NA";
/// Reject code of a row too large for one call (see [`Payload::too_large`]).
pub const ROW_TOO_LARGE: &str = "SFETL_ROW_TOO_LARGE";
/// Reject code of a row a Bulk job left unprocessed.
pub const UNPROCESSED: &str = "UNPROCESSED";

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
    /// Salesforce (or sfetl, before sending) refused it.
    Failed {
        /// Salesforce's error code (`STRING_TOO_LONG`, ...) or sfetl's (`SFETL_...`).
        code: String,
        /// What is wrong.
        message: String,
    },
    /// Salesforce did not get to it: the Bulk job ended (`Failed`, `Aborted`) before
    /// processing it, or its upload failed. Sent once more; if it stays so, the run fails.
    Unprocessed {
        /// Why, as Salesforce said.
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
    /// Per field, the rows whose input left the field's columns out (the field is not sent,
    /// so it keeps its value); `None` or missing when every row has them.
    pub absent: &'a [Option<Vec<bool>>],
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

    /// Whether row `row` leaves column `col` unchanged: its input left the column's keys out.
    pub fn is_absent(&self, col: usize, row: usize) -> bool {
        let absent = self.absent.get(col).and_then(Option::as_ref);
        absent.is_some_and(|a| a[row])
    }

    /// How a message names row `row`: by the key that matches it in Salesforce (`Id
    /// 00Q...`, or the upsert's external id), when it has one.
    pub fn key(&self, row: usize) -> Option<String> {
        let key = self.external_id.unwrap_or("Id");
        let col = self
            .fields
            .iter()
            .position(|(name, _)| name.eq_ignore_ascii_case(key))?;
        let value = self.value(col, row).filter(|v| !v.is_empty())?;
        Some(format!("{} {value}", self.fields[col].0))
    }

    /// The refusal of a row that holds the text `#N/A` in a column sent, if it does. Bulk
    /// ingest CSV reads `#N/A` as "set the field to null" while sObject Collections would store
    /// the text, so the result would depend on the batch size; sfetl sends null as null through
    /// both APIs and refuses the literal text instead.
    pub fn literal_na(&self, row: usize) -> Option<Outcome> {
        let col = self
            .columns()
            .into_iter()
            .find(|&c| self.value(c, row) == Some("#N/A"))?;
        Some(Outcome::Failed {
            code: LITERAL_NA.into(),
            message: format!(
                "{}{} is the text \"#N/A\", which Salesforce's Bulk API reads as \"set to null\" and sObject Collections as text, so sfetl refuses it rather than let the batch size decide; send null (or an empty value) to clear the field, or other text to store",
                self.key(row).map(|k| format!("{k}: ")).unwrap_or_default(),
                self.fields[col].0
            ),
        })
    }

    /// The refusal of row `row`, `size` bytes once encoded as `encoding`, over `limit` (what
    /// one call accepts, worded with its number); names the row's key and its largest value.
    pub fn too_large(&self, row: usize, size: usize, encoding: &str, limit: &str) -> Outcome {
        let largest = self
            .columns()
            .into_iter()
            .map(|c| (self.value(c, row).map_or(0, str::len), self.fields[c].0))
            .max_by_key(|(len, _)| *len);
        let largest = largest
            .map(|(len, name)| format!(" ({name} alone is {len} bytes)"))
            .unwrap_or_default();
        Outcome::Failed {
            code: ROW_TOO_LARGE.into(),
            message: format!(
                "{}the row is {size} bytes as {encoding}, over {limit}{largest}; it was not sent. Shorten the value: a Salesforce text field holds at most 131,072 characters",
                self.key(row).map(|k| format!("{k}: ")).unwrap_or_default(),
            ),
        }
    }
}
