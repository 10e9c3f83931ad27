//! `soql_where` filters: checked to be one balanced condition before they are ANDed into a
//! query, and wrapped in parentheses as a unit when they are.
//!
//! Why: the filter is spliced into `... WHERE cursor >= a AND cursor < b AND (filter)`. A filter
//! like `Name = 'x') OR (Name != null` closes the parenthesis early and ORs away the cursor
//! window (every window then returns every row); `... ORDER BY Name LIMIT 5` breaks the query
//! or silently caps it. This is a lexical check, not a SOQL parser: it tracks string literals
//! (single quotes, backslash escapes) and parentheses, and looks for the clauses that may not
//! appear in a condition. Salesforce checks the rest (`check` runs the filter with `LIMIT 1`).

use std::fmt;

/// Why a filter is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// What is wrong, with where.
    pub reason: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Clauses that end a WHERE condition: a filter may not hold them outside string literals.
const CLAUSES: [(&str, Option<&str>); 7] = [
    ("ORDER", Some("BY")),
    ("GROUP", Some("BY")),
    ("LIMIT", None),
    ("OFFSET", None),
    ("HAVING", None),
    ("FOR", Some("UPDATE")),
    ("FOR", Some("VIEW")),
];

/// A token of a filter, as far as the check needs.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Open,
    Close,
    Word(&'a str),
    Literal,
    Other,
}

/// Splits `text` into tokens with their byte offsets; an unterminated string literal is an
/// error.
fn tokens(text: &str) -> Result<Vec<(usize, Token<'_>)>, FilterError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\'' => {
                let start = i;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => {
                            return Err(FilterError {
                                reason: format!(
                                    "the string literal opened at character {} is never closed; close it with ' (write \\' for a quote inside it)",
                                    text[..start].chars().count() + 1
                                ),
                            });
                        }
                        Some(b'\\') => i += 2,
                        Some(b'\'') => break,
                        Some(_) => i += 1,
                    }
                }
                out.push((start, Token::Literal));
                i += 1;
            }
            b'(' => {
                out.push((i, Token::Open));
                i += 1;
            }
            b')' => {
                out.push((i, Token::Close));
                i += 1;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'.' | b':'))
                {
                    i += 1;
                }
                out.push((start, Token::Word(&text[start..i])));
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                out.push((i, Token::Other));
                i += text[i..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    Ok(out)
}

/// Checks that `text` is one balanced condition: not empty, string literals closed,
/// parentheses balanced without closing one it did not open, no `;`, and no ORDER BY,
/// GROUP BY, LIMIT, OFFSET, HAVING or FOR UPDATE/VIEW outside string literals.
pub fn check_filter(text: &str) -> Result<(), FilterError> {
    let err = |reason: String| Err(FilterError { reason });
    let at = |offset: usize| text[..offset].chars().count() + 1;
    let toks = tokens(text)?;
    if toks.is_empty() {
        return err(
            "it is empty; remove soql_where or give a condition such as IsConverted = false".into(),
        );
    }
    let mut depth = 0usize;
    let mut opened: Vec<usize> = Vec::new();
    for (n, (offset, tok)) in toks.iter().enumerate() {
        match tok {
            Token::Open => {
                depth += 1;
                opened.push(*offset);
            }
            Token::Close if depth == 0 => {
                return err(format!(
                    "the ) at character {} closes a parenthesis the filter did not open, so the filter would escape its own parentheses; balance the parentheses",
                    at(*offset)
                ));
            }
            Token::Close => {
                depth -= 1;
                opened.pop();
            }
            Token::Word(w) => {
                let next = match toks.get(n + 1) {
                    Some((_, Token::Word(next))) => Some(*next),
                    _ => None,
                };
                for (first, second) in CLAUSES {
                    let matches = w.eq_ignore_ascii_case(first)
                        && second.is_none_or(|s| next.is_some_and(|x| x.eq_ignore_ascii_case(s)));
                    if matches {
                        let clause = match second {
                            Some(s) => format!("{first} {s}"),
                            None => first.to_string(),
                        };
                        return err(format!(
                            "{clause} (at character {}) is not part of a condition: soql_where takes only what follows WHERE; sfetl reads every matching row, in its own order",
                            at(*offset)
                        ));
                    }
                }
            }
            Token::Other if text[*offset..].starts_with(';') => {
                return err(format!(
                    "the ; at character {} ends the statement; soql_where takes one condition",
                    at(*offset)
                ));
            }
            _ => {}
        }
    }
    if let Some(open) = opened.first() {
        return err(format!(
            "the ( at character {} is never closed; balance the parentheses",
            at(*open)
        ));
    }
    Ok(())
}

/// The filter as one unit to AND with other conditions: `(filter)`. Use only on a filter that
/// passed [`check_filter`], so the parentheses cannot be escaped.
pub fn parenthesized(filter: &str) -> String {
    format!("({})", filter.trim())
}

/// The fields a filter reads, as written (`Amount`, `account.Industry`,
/// `Account.Owner.Email`), outside string literals, in order, once each (case-insensitively):
/// rows enter and leave such a filter when those values change, and a formula's or a
/// parent's can change while the row's own cursor stays put. SOQL's operator words (`AND`,
/// `LIKE`, `null`, ...) and relative date literals are not fields.
pub fn field_paths(text: &str) -> Vec<String> {
    let Ok(toks) = tokens(text) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for (_, t) in toks {
        let Token::Word(w) = t else { continue };
        if w.starts_with(|c: char| c.is_ascii_alphabetic())
            && !w.contains(':')
            && !is_relative_date(w)
            && !OPERATOR_WORDS.iter().any(|k| k.eq_ignore_ascii_case(w))
            && !out.iter().any(|p| p.eq_ignore_ascii_case(w))
        {
            out.push(w.to_string());
        }
    }
    out
}

/// SOQL's words in a condition that name no field.
const OPERATOR_WORDS: [&str; 10] = [
    "AND", "OR", "NOT", "IN", "LIKE", "INCLUDES", "EXCLUDES", "NULL", "TRUE", "FALSE",
];

/// The relative date literals of a filter (`TODAY`, `LAST_N_DAYS:90`, `THIS_FISCAL_QUARTER`,
/// `N_WEEKS_AGO:2`, ...), outside string literals, as written: such a filter selects other rows
/// as days pass while no row's `SystemModstamp` moves, which an incremental read cannot see.
pub fn relative_dates(text: &str) -> Vec<String> {
    let Ok(toks) = tokens(text) else {
        return Vec::new();
    };
    toks.into_iter()
        .filter_map(|(_, t)| match t {
            Token::Word(w) if is_relative_date(w) => Some(w.to_string()),
            _ => None,
        })
        .collect()
}

/// Whether `word` is one of SOQL's relative date literals (with its `:n` when it takes one).
fn is_relative_date(word: &str) -> bool {
    let w = word.to_ascii_uppercase();
    let w = w.split_once(':').map_or(w.as_str(), |(name, _)| name);
    if matches!(
        w,
        "YESTERDAY" | "TODAY" | "TOMORROW" | "LAST_90_DAYS" | "NEXT_90_DAYS"
    ) {
        return true;
    }
    let unit = |u: &str| {
        let u = u.strip_prefix("FISCAL_").unwrap_or(u);
        matches!(
            u.trim_end_matches('S'),
            "DAY" | "WEEK" | "MONTH" | "QUARTER" | "YEAR"
        )
    };
    if let Some(rest) = w.strip_prefix("N_").and_then(|r| r.strip_suffix("_AGO")) {
        return unit(rest);
    }
    ["LAST_N_", "NEXT_N_", "LAST_", "THIS_", "NEXT_"]
        .iter()
        .find_map(|p| w.strip_prefix(p))
        .is_some_and(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        check_filter(text).unwrap_err().reason
    }

    #[test]
    fn conditions_pass() {
        for ok in [
            "IsConverted = false",
            "(Name = 'a' OR Name = 'b') AND Amount > 5",
            "Name = 'it''s' OR Name = 'x\\'y'",
            "Name = 'ORDER BY LIMIT 5 ) ('",
            "Description LIKE '%;%'",
            "CreatedDate = LAST_N_DAYS:30 AND Account.Name != null",
            "Type IN ('A', 'B') AND NOT (Limit__c > 3)",
            "Order.Name = 'x' AND Group__c = 'y'",
        ] {
            assert_eq!(check_filter(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            parenthesized(" IsConverted = false "),
            "(IsConverted = false)"
        );
    }

    #[test]
    fn escapes_and_clauses_are_refused() {
        assert_eq!(
            refused("Name = 'zzz') OR (Name != null"),
            "the ) at character 13 closes a parenthesis the filter did not open, so the filter would escape its own parentheses; balance the parentheses"
        );
        assert_eq!(
            refused("IsConverted = false ORDER BY Name LIMIT 5"),
            "ORDER BY (at character 21) is not part of a condition: soql_where takes only what follows WHERE; sfetl reads every matching row, in its own order"
        );
        assert_eq!(
            refused("Name != null limit 5"),
            "LIMIT (at character 14) is not part of a condition: soql_where takes only what follows WHERE; sfetl reads every matching row, in its own order"
        );
        assert!(refused("Name != null OFFSET 5").starts_with("OFFSET (at character 14)"));
        assert!(refused("Name != null GROUP  BY Name").starts_with("GROUP BY (at character 14)"));
        assert_eq!(
            refused("(Name = 'a'"),
            "the ( at character 1 is never closed; balance the parentheses"
        );
        assert_eq!(
            refused("Name = 'Zoë"),
            "the string literal opened at character 8 is never closed; close it with ' (write \\' for a quote inside it)"
        );
        assert_eq!(
            refused("Name = 'a'; DELETE"),
            "the ; at character 11 ends the statement; soql_where takes one condition"
        );
        assert_eq!(
            refused("   "),
            "it is empty; remove soql_where or give a condition such as IsConverted = false"
        );
    }

    #[test]
    fn relative_date_literals_are_found_outside_string_literals() {
        assert_eq!(
            relative_dates(
                "CreatedDate = LAST_N_DAYS:90 AND (CloseDate > today OR Name = 'TODAY') AND LastActivityDate = THIS_FISCAL_QUARTER AND X__c = N_WEEKS_AGO:2"
            ),
            [
                "LAST_N_DAYS:90",
                "today",
                "THIS_FISCAL_QUARTER",
                "N_WEEKS_AGO:2"
            ]
        );
        for plain in [
            "IsConverted = false",
            "LastName = 'x' AND Last_Week__c = 1",
            "CreatedDate > 2024-01-01T00:00:00Z",
            "Status = 'THIS_YEAR'",
        ] {
            assert_eq!(relative_dates(plain), Vec::<String>::new(), "{plain}");
        }
    }

    #[test]
    fn field_paths_are_found_outside_string_literals() {
        assert_eq!(
            field_paths(
                "account.Industry = 'Owner.Name' AND Account.Owner.Email != null AND Amount > 1.5 AND ACCOUNT.INDUSTRY = 'x' AND CreatedDate > 2024-01-01T00:00:00.000Z AND Name = 'it\\'s Parent.Name' AND NOT (Days__c IN (1, 2)) AND Type LIKE 'a%' AND IsWon = FALSE AND Closed__c = true AND CreatedDate = LAST_N_DAYS:3 AND Tags__c INCLUDES ('x') AND amount < 9"
            ),
            [
                "account.Industry",
                "Account.Owner.Email",
                "Amount",
                "CreatedDate",
                "Name",
                "Days__c",
                "Type",
                "IsWon",
                "Closed__c",
                "Tags__c"
            ]
        );
        assert_eq!(
            field_paths("IsConverted = false AND Name = 'a.b'"),
            ["IsConverted", "Name"]
        );
        assert!(field_paths("Name = 'unclosed").is_empty());
    }
}
